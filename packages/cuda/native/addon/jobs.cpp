#include "jobs.h"

namespace addon {

static void job_execute(napi_env, void* data) {
  Job* job = static_cast<Job*>(data);
  job->result = job->fn();
}

static void job_complete(napi_env env, napi_status, void* data) {
  Job* job = static_cast<Job*>(data);
  if (job->result.err != cudaSuccess) {
    napi_reject_deferred(env, job->deferred, make_error(env, job->result.err, job->result.where));
  } else {
    napi_value value;
    if (job->values.empty()) {
      napi_get_undefined(env, &value);
    } else {
      napi_create_array_with_length(env, job->values.size(), &value);
      for (size_t i = 0; i < job->values.size(); ++i) {
        napi_value x;
        napi_create_double(env, job->values[i], &x);
        napi_set_element(env, value, (uint32_t)i, x);
      }
    }
    napi_resolve_deferred(env, job->deferred, value);
  }
  for (napi_ref r : job->keep) napi_delete_reference(env, r);
  napi_delete_async_work(env, job->work);
  delete job;
}

napi_value queue_job(napi_env env, Job* job, const char* name) {
  napi_value promise, resource_name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  napi_create_async_work(env, nullptr, resource_name, job_execute, job_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

}  // namespace addon

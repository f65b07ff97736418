/**
 * The backend registry: each backend package describes itself with a `BackendProvider` and registers it
 * (its `provider` entry does so when imported; `discoverBackends()` from `@flashattn/core/node` imports every
 * installed package that declares one). `resolveBackend('auto')` then probes the registered providers in
 * priority order and says, for each, why it was or was not taken. Nothing here lists backends by name:
 * a new backend is a new package with a provider, and no central list changes.
 *
 * The registry is keyed on globalThis, so two copies of core in one process (a bundled app beside an
 * installed package) share it.
 */
import type { AttentionBackend } from './attention-backend.js';
import type { Ops } from './ops.js';
import { BackendUnavailableError, FlashAttnError } from '../errors.js';

export interface ProbeContext {
  /**
   * True when the user named this backend, false when 'auto' is choosing. A backend may decline 'auto'
   * where it would be slower than a lower-priority one (a software WebGPU adapter vs the CPU) and still
   * run when asked for by name.
   */
  requested: boolean;
}

export type ProbeResult =
  { available: true; detail?: string } | { available: false; reason: string };

export interface BackendProvider {
  /** 'cpu', 'webgpu', 'cuda', ...: what users pass as --backend. */
  readonly name: string;
  /** Higher is preferred by 'auto' (cpu 0, webgpu 10, cuda 20). */
  readonly priority: number;
  /** Whether the backend can run here, and if not, why, in one sentence naming what is missing. */
  probe(context?: ProbeContext): Promise<ProbeResult>;
  /** Host-tensor attention (the `AttentionBackend` contract). */
  createAttention(options?: Record<string, unknown>): Promise<AttentionBackend>;
  /** Device-resident model ops; absent where the backend has none yet. */
  createOps?(options?: Record<string, unknown>): Promise<Ops<unknown>>;
}

export interface BackendDecision {
  name: string;
  taken: boolean;
  /** Why it was taken or passed over. */
  reason: string;
}

export interface ResolvedBackend<T> {
  provider: BackendProvider;
  /** The attention backend or the ops, as asked. */
  value: T;
  /** One line per candidate considered, in the order tried. */
  decisions: BackendDecision[];
}

const KEY = Symbol.for('@flashattn/core/backend-registry');

function registry(): Map<string, BackendProvider> {
  const g = globalThis as unknown as Record<symbol, Map<string, BackendProvider> | undefined>;
  let r = g[KEY];
  if (!r) {
    r = new Map();
    g[KEY] = r;
  }
  return r;
}

/** Add (or replace, by name) a provider. */
export function registerBackend(provider: BackendProvider): void {
  if (!provider || typeof provider.name !== 'string' || typeof provider.probe !== 'function') {
    throw new FlashAttnError(
      'registerBackend: expected a BackendProvider { name, priority, probe, createAttention }',
    );
  }
  registry().set(provider.name, provider);
}

/** Registered providers, most preferred first. */
export function listBackends(): BackendProvider[] {
  return [...registry().values()].sort(
    (a, b) => b.priority - a.priority || a.name.localeCompare(b.name),
  );
}

export interface ResolveOptions {
  /** 'attention' (default): createAttention; 'ops': createOps (providers without ops are passed over). */
  need?: 'attention' | 'ops';
  /** Passed to createAttention / createOps. */
  options?: Record<string, unknown>;
  /**
   * Options for one backend only, by provider name, merged over `options` for it (e.g. the CPU's threads and
   * attention kind, which another backend would reject as unknown).
   */
  optionsFor?: Readonly<Record<string, Record<string, unknown>>>;
}

/**
 * 'auto': the most preferred registered backend that probes available and creates without error;
 * a name: that backend or a `BackendUnavailableError` saying why. Either way `decisions` records the
 * reason for every candidate, for the app to print.
 */
export async function resolveBackend<T = AttentionBackend>(
  choice: string,
  o: ResolveOptions = {},
): Promise<ResolvedBackend<T>> {
  const need = o.need ?? 'attention';
  const all = listBackends();
  const candidates = choice === 'auto' ? all : all.filter((p) => p.name === choice);
  const decisions: BackendDecision[] = [];
  if (candidates.length === 0) {
    const known = all.map((p) => p.name).join(', ') || 'none';
    throw new BackendUnavailableError(
      choice,
      `no backend named '${choice}' is registered (registered: ${known}; install its package or import its provider)`,
    );
  }
  for (const p of candidates) {
    if (need === 'ops' && !p.createOps) {
      decisions.push({ name: p.name, taken: false, reason: 'has no device ops (attention only)' });
      continue;
    }
    let probe: ProbeResult;
    try {
      probe = await p.probe({ requested: choice !== 'auto' });
    } catch (e) {
      probe = { available: false, reason: `probe failed: ${(e as Error).message}` };
    }
    if (!probe.available) {
      decisions.push({ name: p.name, taken: false, reason: probe.reason });
      continue;
    }
    try {
      const own = o.optionsFor?.[p.name];
      const options = own ? { ...o.options, ...own } : o.options;
      const value = (
        need === 'ops' ? await p.createOps!(options) : await p.createAttention(options)
      ) as T;
      decisions.push({ name: p.name, taken: true, reason: probe.detail ?? 'available' });
      return { provider: p, value, decisions };
    } catch (e) {
      const reason = e instanceof BackendUnavailableError ? e.reason : (e as Error).message;
      decisions.push({ name: p.name, taken: false, reason });
    }
  }
  // One candidate: its reason alone (the error already names the backend); several: each with its name.
  const why =
    decisions.length === 1
      ? decisions[0]!.reason
      : decisions.map((d) => `${d.name}: ${d.reason}`).join('; ');
  throw new BackendUnavailableError(choice, why);
}

export * from './dtype.js';
export * from './errors.js';
export * from './tensor.js';
export * from './options.js';
export * from './validate.js';
export * from './backend.js';
export * from './random.js';
export * from './reference.js';

/**
 * The package for browsers (the "browser" export condition, which bundlers such as Vite pick): everything
 * but the Node-only file helpers (saveCheckpoint / loadCheckpoint, writeFileAtomic, readHuggingFaceConfig).
 * A page saves and loads checkpoints as bytes: encodeCheckpoint / loadCheckpointBytes.
 */
export * from './portable.js';

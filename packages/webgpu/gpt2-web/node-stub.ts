/**
 * What the page gets for `node:fs` / `node:path` (vite.config.ts aliases them here): the transformer's
 * index also exports its Node-only file helpers (saveCheckpoint's atomic write, loadCheckpoint's read,
 * the Hugging Face config reader), which the page never calls: it saves and loads checkpoints as bytes
 * (encodeCheckpoint / loadCheckpointBytes). Calling one of these says so instead of failing obscurely.
 */
const nodeOnly = (name: string) => (): never => {
  throw new Error(
    `${name} is Node-only; in the browser use encodeCheckpoint / loadCheckpointBytes`,
  );
};
export const readFileSync = nodeOnly('fs.readFileSync');
export const closeSync = nodeOnly('fs.closeSync');
export const fsyncSync = nodeOnly('fs.fsyncSync');
export const openSync = nodeOnly('fs.openSync');
export const renameSync = nodeOnly('fs.renameSync');
export const unlinkSync = nodeOnly('fs.unlinkSync');
export const writeSync = nodeOnly('fs.writeSync');
export const basename = nodeOnly('path.basename');
export const dirname = nodeOnly('path.dirname');
export const join = nodeOnly('path.join');

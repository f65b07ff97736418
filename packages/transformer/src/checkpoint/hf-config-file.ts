/** Reading a Hugging Face config.json file (Node): the conversion itself is hf-config.ts. */
import { readFileSync } from 'node:fs';
import type { GPT2Config } from '../config.js';
import { configFromHuggingFace } from './hf-config.js';
import { CheckpointError } from './safetensors.js';

/** Read and convert a config.json file. */
export function readHuggingFaceConfig(path: string): GPT2Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CheckpointError(path, `cannot read (${(e as Error).message})`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(path, `not JSON (${(e as Error).message})`, { cause: e });
  }
  return configFromHuggingFace(json, path);
}

/** What the data-parallel pieces take from core and the model (one place, no deep imports). */
export { shardRange, type Communicator, type Ops } from '@flashattn/core';

/** A parameter tensor's place in the flat buffer and whether AdamW decays it (transformer's ParamSpec). */
export interface ParamSpecLike {
  offset: number;
  size: number;
  decay: boolean;
}

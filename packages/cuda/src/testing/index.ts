/**
 * `@flashattn/cuda/testing`: test helpers shared by this package's tests and the device runner in apps/bench.
 */
export {
  ALIGNED_LAYOUTS,
  alignedDeviceBackend,
  type AlignedDevice,
  type AlignedLayout,
} from './aligned-layouts.js';

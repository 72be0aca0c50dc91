/**
 * sdb-x-sdk: the TypeScript SDK of sdbx. The default export is the
 * SandboxSDK class; the error classes and every public type are named
 * exports (SandboxSDK is one too, for CommonJS: `const { SandboxSDK } =
 * require('sdb-x-sdk')`).
 */
import { SandboxSDK } from './sdk.js';

export default SandboxSDK;
export { SandboxSDK };
export {
  SandboxSDKError,
  ConnectionError,
  TimeoutError,
  SandboxError,
  RateLimitError,
  AuthenticationError,
  ValidationError,
  errorFromWire,
} from './errors.js';
export type { ErrorCode, SandboxSDKErrorOptions, WireError } from './errors.js';
export type * from './types.js';

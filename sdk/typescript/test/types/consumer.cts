// Type-checked as CommonJS: require() of the package gets the same API.
import sdbx = require('sdb-x-sdk');

const sdk = new sdbx.SandboxSDK({ apiKey: 'k', serverUrl: 'http://localhost:3000' });
const viaDefault: sdbx.SandboxSDK = new sdbx.default({ apiKey: 'k', serverUrl: 'http://localhost:3000' });
const cfg: sdbx.SandboxSDKConfig = { apiKey: 'k', serverUrl: 'http://x' };
export async function f(): Promise<number> {
  try {
    await sdk.listSandboxes();
  } catch (e) {
    if (e instanceof sdbx.RateLimitError) return e.retryAfter;
  }
  viaDefault.disconnect();
  void cfg;
  return 0;
}

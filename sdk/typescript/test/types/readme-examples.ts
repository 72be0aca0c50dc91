// The README's TypeScript examples, as written, type-checked against the
// packed package (strict, except strictNullChecks: the examples pass
// process.env values, which are string | undefined, as apiKey/serverUrl).
// Names the snippets take from their surroundings are declared here.
import SandboxSDK, {
  SandboxSDKError,
  ConnectionError,
  TimeoutError,
  SandboxError,
  RateLimitError
} from 'sdb-x-sdk';
import type { SandboxSDKConfig } from 'sdb-x-sdk';

declare const sdk: SandboxSDK;
declare const sandbox: { id: string };
declare const sandboxId: string;
declare const code: string;
declare const logger: { error(msg: string, meta: unknown): void };
declare const MAX_SANDBOXES: number;
declare const xterm: { write(data: string): void };

export const config: SandboxSDKConfig = {
  apiKey: 'your-api-key',
  serverUrl: 'http://localhost:3000',
  timeout: 60000,
  maxRetries: 3,
  retryDelay: 1000,
  enableLogging: false,
  logLevel: 'info',
  enableMetrics: false,
  metricsInterval: 30000,
  socketOptions: { transports: ['websocket'] },
};

export async function quickStart() {
  // Initialize SDK
  const sdk = new SandboxSDK({
    apiKey: 'your-api-key',
    serverUrl: 'http://localhost:3000',
    enableLogging: true,
    logLevel: 'info'
  });

  // Connect to server
  await sdk.waitForConnection();

  // Create a sandbox
  const { sandbox } = await sdk.createSandbox({
    templateId: 'python-3-11',
    name: 'My Python Project'
  });

  // Run code
  const result = await sdk.runCode(sandbox.id, `
    print("Hello from sandbox!")
    x = 10 + 20
    print(f"Result: {x}")
  `);

  console.log(result.execution.logs.stdout);

  // Cleanup
  await sdk.deleteSandbox(sandbox.id);
  sdk.disconnect();
}

export async function sandboxes() {
  // Create sandbox
  const { sandbox } = await sdk.createSandbox({
    templateId: 'python-3-11',
    name: 'Data Analysis',
    expiryTime: 3600000, // 1 hour
    initialEnvVars: {
      DEBUG: 'true',
      API_KEY: 'secret123'
    }
  });

  // Check sandbox status
  const status = await sdk.getSandboxStatus(sandbox.id);

  // List all sandboxes
  const sandboxes = await sdk.listSandboxes();

  // Delete sandbox
  await sdk.deleteSandbox(sandbox.id);
  return [status, sandboxes];
}

export async function templates() {
  // Get available templates
  const templates = await sdk.getTemplates(1, 10); // page 1, 10 items per page

  // Get specific template
  const template = await sdk.getTemplate('python-3-11');

  // Create custom template
  const customTemplate = await sdk.createTemplate({
    name: 'Custom ML Stack',
    language: 'python',
    version: '3.11',
    dockerImage: 'python:3.11-slim',
    dependencies: ['pandas', 'numpy', 'scikit-learn'],
    installCommand: 'pip install -r requirements.txt',
    defaultEnvVars: {
      ML_ENV: 'production'
    }
  });
  return [templates, template, customTemplate];
}

export async function codeExecution() {
  const result = await sdk.runCode(
    sandbox.id,
    `
      import pandas as pd
      print("Loading data...")
      df = pd.read_csv('data.csv')
      print(df.head())
    `,
    {
      timeoutMs: 30000,
      onStdout: (output) => {
        console.log('Output:', output.line);
      },
      onStderr: (output) => {
        console.error('Error:', output.line);
      },
      onResult: (result) => {
        console.log('Result:', result.text);
      },
      onError: (error) => {
        console.error('Execution error:', error.name);
      },
      envs: {
        CUSTOM_VAR: 'value'
      }
    }
  );

  // Access execution results
  console.log('Stdout:', result.execution.logs.stdout);
  console.log('Stderr:', result.execution.logs.stderr);
  console.log('Results:', result.execution.results);
  console.log('Metadata:', result.metadata);
}

export async function files() {
  // Write file
  await sdk.writeFile(
    {
      sandboxId: sandbox.id,
      path: '/workspace/hello.py',
      createParents: true
    },
    `print("Hello from file!")`
  );

  // Read file
  const content = await sdk.readFile({
    sandboxId: sandbox.id,
    path: '/workspace/hello.py'
  });

  // List files
  const files = await sdk.listFiles(sandbox.id, '/workspace');

  // Delete file
  await sdk.deleteFile({
    sandboxId: sandbox.id,
    path: '/workspace/hello.py'
  });
  return [content, files];
}

export async function contexts() {
  // Create context
  const context = await sdk.createCodeContext({
    sandboxId: sandbox.id,
    language: 'python',
    cwd: '/workspace/project'
  });

  // Run code in context (variables persist)
  await sdk.runCode(sandbox.id, 'x = 10');
  await sdk.runCode(sandbox.id, 'print(x)'); // prints 10

  // List contexts
  const contexts = await sdk.listCodeContexts(sandbox.id);

  // Delete context
  await sdk.deleteCodeContext(context.id);
  return contexts;
}

export async function terminal() {
  const output = await sdk.runTerminal(
    sandbox.id,
    'pip install numpy pandas matplotlib',
    {
      timeoutMs: 60000,
      onStdout: (output) => {
        console.log(output.line);
      }
    }
  );

  console.log('Installation output:', output);
}

export async function batch() {
  const jobs = [
    {
      id: 'job-1',
      code: 'print("Job 1")',
      timeout: 10000,
      priority: 1
    },
    {
      id: 'job-2',
      code: 'print("Job 2")',
      timeout: 10000,
      priority: 2
    }
  ];

  const results = await sdk.executeBatch(sandbox.id, jobs);

  results.forEach(result => {
    console.log(`${result.jobId}: ${result.success ? 'Success' : result.error}`);
    console.log(`Duration: ${result.duration}ms`);
  });
}

export async function errorHandling() {
  try {
    await sdk.runCode(sandboxId, code);
  } catch (error) {
    if (error instanceof RateLimitError) {
      console.log(`Rate limited. Retry after ${error.retryAfter}ms`);
    } else if (error instanceof TimeoutError) {
      console.log('Operation timed out');
    } else if (error instanceof ConnectionError) {
      console.log('Connection failed');
    } else if (error instanceof SandboxError) {
      console.log('Sandbox error:', error.message);
    } else if (error instanceof SandboxSDKError) {
      console.log('SDK error:', error.message);
    }
  }
}

export async function metricsExample() {
  const sdk = new SandboxSDK({
    apiKey: 'your-api-key',
    serverUrl: 'http://localhost:3000',
    enableMetrics: true,
    metricsInterval: 30000, // collect every 30s
    enableLogging: true,
    logLevel: 'debug'
  });

  // Get current metrics
  const metrics = sdk.getMetrics();

  console.log({
    totalRequests: metrics.totalRequests,
    successfulRequests: metrics.successfulRequests,
    failedRequests: metrics.failedRequests,
    averageResponseTime: metrics.averageResponseTime,
    totalExecutionTime: metrics.totalExecutionTime,
    activeSandboxes: metrics.activeSandboxes
  });
}

export async function multiSandbox() {
  // Create multiple sandboxes
  const [pythonSandbox, nodeSandbox] = await Promise.all([
    sdk.createSandbox({ templateId: 'python-3-11' }),
    sdk.createSandbox({ templateId: 'nodejs-18' })
  ]);

  // Run parallel tasks
  const [pythonResult, nodeResult] = await Promise.all([
    sdk.runCode(pythonSandbox.sandbox.id, 'print("Python")'),
    sdk.runCode(nodeSandbox.sandbox.id, 'console.log("Node")')
  ]);

  // Cleanup
  await Promise.all([
    sdk.deleteSandbox(pythonSandbox.sandbox.id),
    sdk.deleteSandbox(nodeSandbox.sandbox.id)
  ]);
  return [pythonResult, nodeResult];
}

export function environments() {
  // Development
  const devSdk = new SandboxSDK({
    apiKey: process.env.SDK_API_KEY,
    serverUrl: process.env.SDK_SERVER_URL,
    enableLogging: true,
    logLevel: 'debug',
    enableMetrics: true,
    timeout: 120000 // longer timeout for dev
  });

  // Production
  const prodSdk = new SandboxSDK({
    apiKey: process.env.SDK_API_KEY,
    serverUrl: process.env.SDK_SERVER_URL,
    enableLogging: false,
    enableMetrics: true,
    timeout: 60000,
    maxRetries: 3
  });
  return [devSdk, prodSdk];
}

export function gracefulShutdown() {
  async function shutdown() {
    const sandboxes = await sdk.listSandboxes();

    // Delete all sandboxes
    await Promise.all(
      sandboxes.map(sb => sdk.deleteSandbox(sb.id))
    );

    // Disconnect
    sdk.disconnect();

    console.log('SDK shutdown complete');
  }

  // Cleanup on exit
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

export async function dataAnalysis() {
  const { sandbox } = await sdk.createSandbox({
    templateId: 'python-data-science',
    name: 'Data Analysis'
  });

  await sdk.writeFile(
    { sandboxId: sandbox.id, path: '/workspace/analysis.py' },
    `
import pandas as pd
import numpy as np

df = pd.read_csv('data.csv')
print(df.describe())
print(f"Mean: {df['value'].mean()}")
    `
  );

  const result = await sdk.runCode(
    sandbox.id,
    'exec(open("/workspace/analysis.py").read())'
  );
  return result;
}

export async function webServer() {
  const { sandbox } = await sdk.createSandbox({
    templateId: 'nodejs-18',
    name: 'Express Server'
  });

  await sdk.writeFile(
    { sandboxId: sandbox.id, path: '/workspace/server.js' },
    `
const express = require('express');
const app = express();
    `
  );

  await sdk.runTerminal(sandbox.id, 'node /workspace/server.js');
}

export async function troubleshooting() {
  // Increase timeout
  await sdk.waitForConnection(30000); // 30 seconds

  // Check server URL and API key
  console.log(sdk.isReady());

  // Handle rate limit error
  try {
    await sdk.runCode(sandboxId, code);
  } catch (error) {
    if (error instanceof RateLimitError) {
      await new Promise(resolve => 
        setTimeout(resolve, error.retryAfter)
      );
      // Retry
    }
  }

  // Increase execution timeout
  const result = await sdk.runCode(sandboxId, code, {
    timeoutMs: 120000 // 2 minutes
  });

  // Ensure parent directories exist
  await sdk.writeFile(
    {
      sandboxId,
      path: '/workspace/data/result.txt',
      createParents: true // creates all parent directories
    },
    'content'
  );

  // Sandbox disk full
  try {
    await sdk.writeFile({ sandboxId, path: '/workspace/out.bin' }, 'content');
  } catch (error) {
    if (error instanceof SandboxError && error.code === 'resource_exhausted') {
      await sdk.deleteFile({ sandboxId, path: '/workspace/cache', recursive: true });
      await sdk.writeFile({ sandboxId, path: '/workspace/out.bin' }, 'content');
    } else {
      throw error;
    }
  }
  return result;
}

export async function bestPractices() {
  try {
    // Your code
  } finally {
    await sdk.deleteSandbox(sandboxId);
  }

  const { sandbox } = await sdk.createSandbox({
    templateId: 'python-3-11',
    initialEnvVars: {
      DATABASE_URL: process.env.DATABASE_URL,
      API_KEY: process.env.API_KEY
    }
  });

  const result = await sdk.runCode(sandboxId, code, {
    onError: (error) => {
      logger.error('Code execution failed', { error });
    }
  });

  const metrics = sdk.getMetrics();
  if (metrics.activeSandboxes > MAX_SANDBOXES) {
    // Implement cleanup logic
  }
  return [sandbox, result];
}

export async function backgroundProcessesAndTerminals() {
  const proc = await sdk.runTerminal(sandbox.id, 'python3 -m http.server 8000', { background: true });
  console.log(proc.id, proc.pid);                      // 'proc_…', 42

  const sub = await sdk.onOutput(sandbox.id, proc.id, (chunk) => {
    process.stdout.write(chunk.data);                  // chunk.stream, chunk.offset, chunk.end
  }, { offset: 0, onExit: ({ exitCode }) => console.log('exited', exitCode) });
  // … later, or from another client after a reconnect:
  const { output, end, exited } = await sdk.getProcessOutput(sandbox.id, proc.id, { offset: sub.offset });
  await sdk.sendInput(sandbox.id, proc.id, 'some input\n');
  await sdk.killProcess(sandbox.id, proc.id);          // or killProcess(id, procId, 'SIGTERM')

  const term = await sdk.createTerminal(sandbox.id, {
    cols: 120, rows: 40,
    onData: (data) => xterm.write(data),
    onExit: ({ exitCode }) => console.log('shell exited', exitCode),
  });
  await term.write('ls -la\n');   // keys typed; '\x03' is Ctrl-C
  await term.resize(100, 30);
  await term.detach();             // the shell keeps running…
  const again = await sdk.attachTerminal(sandbox.id, term.id, { offset: term.offset, onData: (d) => xterm.write(d) });
  await again.kill();              // ends the shell and everything it started

  // Stays a blocking call that resolves with the stdout.
  const stdout: string = await sdk.runTerminal(sandbox.id, 'node /workspace/server.js');
  return [output, end, exited, stdout];
}

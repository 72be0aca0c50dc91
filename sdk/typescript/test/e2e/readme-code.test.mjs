// The README's Code Execution, Contexts, Batch Operations, Multi-Sandbox
// Orchestration and Data Analysis examples, run as written against the
// real server, plus rich results, exceptions and timeouts of runCode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { SandboxError, TimeoutError } from '../../dist/index.js';
import { captureConsole, closeSandbox, newSDK, openSandbox, server, serverTest } from '../helpers/env.mjs';

let sdk;
let sandbox;

before(async () => ({ sdk, sandbox } = await openSandbox('code tests')));
after(() => closeSandbox(sdk, sandbox));

/** hostHasPandas tells whether the sandbox's python can import pandas. */
async function sandboxHasPandas(id) {
  const res = await sdk.runCommand(id, ['python3', '-c', 'import pandas']);
  return res.exitCode === 0;
}

serverTest('README Code Execution (callbacks, envs, results, metadata)', async () => {
  // The example reads data.csv from the working directory.
  await sdk.runTerminal(sandbox.id, 'printf "name,value\\na,1\\nb,2\\nc,3\\n" > /workspace/data.csv');
  const pandas = await sandboxHasPandas(sandbox.id);
  const seen = { stdout: [], stderr: [], results: [], errors: [] };
  let result;
  const printed = await captureConsole(async () => {
    result = await sdk.runCode(
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
          seen.stdout.push(output);
          console.log('Output:', output.line);
        },
        onStderr: (output) => {
          seen.stderr.push(output);
          console.error('Error:', output.line);
        },
        onResult: (result) => {
          seen.results.push(result);
          console.log('Result:', result.text);
        },
        onError: (error) => {
          seen.errors.push(error);
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
  });

  assert.deepEqual(seen.stdout.map((o) => o.line), result.execution.logs.stdout, 'streamed lines = logged lines');
  for (const o of seen.stdout) assert.equal(typeof o.timestamp, 'number');
  if (pandas) {
    assert.equal(result.execution.logs.stdout[0], 'Loading data...');
    assert.match(result.execution.logs.stdout.join('\n'), /name\s+value/);
    assert.equal(result.execution.error, undefined);
    assert.deepEqual(seen.errors, []);
  } else {
    assert.equal(result.execution.error?.name, 'ModuleNotFoundError');
    assert.deepEqual(seen.errors.map((e) => e.name), ['ModuleNotFoundError']);
  }
  assert.equal(result.metadata.sandboxId, sandbox.id);
  assert.equal(result.metadata.language, 'python');
  assert.match(result.metadata.contextId, /\S/);
  assert.equal(typeof result.metadata.durationMs, 'number');
  assert.ok(printed.some((p) => p.args[0] === 'Metadata:'));
});

serverTest('envs apply to one run only', async () => {
  const r1 = await sdk.runCode(sandbox.id, 'import os\nprint(os.environ.get("CUSTOM_VAR"))', { envs: { CUSTOM_VAR: 'value' } });
  assert.deepEqual(r1.execution.logs.stdout, ['value']);
  const r2 = await sdk.runCode(sandbox.id, 'import os\nprint(os.environ.get("CUSTOM_VAR"))');
  assert.deepEqual(r2.execution.logs.stdout, ['None']);
});

serverTest('rich results: text and MIME fields, through onResult and results', async () => {
  const got = [];
  const result = await sdk.runCode(
    sandbox.id,
    `
    class Rich:
        def __repr__(self): return "Rich()"
        def _repr_html_(self): return "<b>rich</b>"
        def _repr_markdown_(self): return "**rich**"
        def _repr_svg_(self): return '<svg xmlns="http://www.w3.org/2000/svg"></svg>'
        def _repr_json_(self): return {"rich": True}
    display(Rich())
    1 + 2
    `,
    { onResult: (r) => got.push(r) },
  );
  assert.equal(result.execution.error, undefined, JSON.stringify(result.execution.error));
  assert.equal(got.length, 2, JSON.stringify(got));
  const [shown, main] = got;
  assert.equal(shown.text, 'Rich()');
  assert.equal(shown.html, '<b>rich</b>');
  assert.equal(shown.markdown, '**rich**');
  assert.match(shown.svg, /^<svg/);
  assert.deepEqual(shown.json, { rich: true });
  assert.equal(main.text, '3');
  const mainResult = result.execution.results.find((r) => r.isMainResult);
  assert.equal(mainResult?.text, '3');
});

serverTest('an exception is reported, not thrown: onError {name, value, traceback}', async () => {
  const errors = [];
  const result = await sdk.runCode(sandbox.id, 'print("before")\n1/0', { onError: (e) => errors.push(e) });
  assert.deepEqual(result.execution.logs.stdout, ['before']);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].name, 'ZeroDivisionError');
  assert.equal(errors[0].value, 'division by zero');
  assert.match(errors[0].traceback, /ZeroDivisionError/);
  assert.equal(result.execution.error.name, 'ZeroDivisionError');
  assert.equal(result.execution.error.value, 'division by zero');
});

serverTest('stderr of code goes to onStderr', async () => {
  const err = [];
  const result = await sdk.runCode(sandbox.id, 'import sys\nprint("careful", file=sys.stderr)', { onStderr: (o) => err.push(o.line) });
  assert.deepEqual(err, ['careful']);
  assert.deepEqual(result.execution.logs.stderr, ['careful']);
});

serverTest('README Troubleshooting: Execution Timeout, and a run past timeoutMs', async () => {
  const sandboxId = sandbox.id;
  const code = 'print("quick")';
  // Increase execution timeout
  const result = await sdk.runCode(sandboxId, code, {
    timeoutMs: 120000 // 2 minutes
  });
  assert.deepEqual(result.execution.logs.stdout, ['quick']);

  await assert.rejects(sdk.runCode(sandboxId, 'import time\ntime.sleep(30)', { timeoutMs: 1000 }), (err) => {
    assert.ok(err instanceof TimeoutError, `got ${err?.name}: ${err?.message}`);
    assert.equal(err.code, 'timeout');
    return true;
  });
  // The sandbox (and a context) still work afterwards.
  const after = await sdk.runCode(sandboxId, 'print("after")');
  assert.deepEqual(after.execution.logs.stdout, ['after']);
});

serverTest('README Contexts', async () => {
  // Create context
  const context = await sdk.createCodeContext({
    sandboxId: sandbox.id,
    language: 'python',
    cwd: '/workspace/project'
  });
  assert.match(context.id, /\S/);
  assert.equal(context.sandboxId, sandbox.id);
  assert.equal(context.language, 'python');
  assert.equal(context.cwd, '/workspace/project');

  // Run code in context (variables persist)
  await sdk.runCode(sandbox.id, 'x = 10');
  const printed = await sdk.runCode(sandbox.id, 'print(x)'); // prints 10
  assert.deepEqual(printed.execution.logs.stdout, ['10']);

  // The explicit context has its own state and cwd.
  const inCtx = await sdk.runCode(sandbox.id, 'import os\nprint(os.getcwd())\nprint("x" in globals())', { context });
  assert.deepEqual(inCtx.execution.logs.stdout, ['/workspace/project', 'False']);
  await sdk.runCode(sandbox.id, 'y = 5', { context: context.id });
  const y = await sdk.runCode(sandbox.id, 'print(y * 2)', { context: context.id });
  assert.deepEqual(y.execution.logs.stdout, ['10']);
  assert.equal(y.metadata.contextId, context.id);

  // List contexts
  const contexts = await sdk.listCodeContexts(sandbox.id);
  assert.ok(contexts.some((c) => c.id === context.id));
  assert.ok(contexts.some((c) => c.default === true && c.language === 'python'), 'the default context is listed');

  // Delete context
  await sdk.deleteCodeContext(context.id);
  assert.ok(!(await sdk.listCodeContexts(sandbox.id)).some((c) => c.id === context.id));
  await assert.rejects(sdk.runCode(sandbox.id, 'print(1)', { context: context.id }), (err) => err instanceof SandboxError && err.code === 'not_found');
});

serverTest('README Batch Operations', async () => {
  const streamed = [];
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

  let results;
  const printed = await captureConsole(async () => {
    results = await sdk.executeBatch(sandbox.id, jobs, { onStdout: (o) => streamed.push(o) });

    results.forEach(result => {
      console.log(`${result.jobId}: ${result.success ? 'Success' : result.error}`);
      console.log(`Duration: ${result.duration}ms`);
    });
  });
  assert.deepEqual(results.map((r) => [r.jobId, r.success]), [['job-1', true], ['job-2', true]]);
  assert.deepEqual(results[0].execution.logs.stdout, ['Job 1']);
  assert.deepEqual(results[1].execution.logs.stdout, ['Job 2']);
  for (const r of results) assert.equal(typeof r.duration, 'number');
  assert.deepEqual(printed.filter((p) => /^job-/.test(p.args[0])).map((p) => p.args[0]), ['job-1: Success', 'job-2: Success']);
  assert.deepEqual(streamed.map((o) => [o.jobId, o.line]).sort(), [['job-1', 'Job 1'], ['job-2', 'Job 2']]);
});

serverTest('a failing batch job does not stop the others', async () => {
  const errors = [];
  const results = await sdk.executeBatch(
    sandbox.id,
    [
      { id: 'ok-1', code: 'print("fine")' },
      { id: 'bad', code: '1/0' },
      { id: 'ok-2', code: 'print("also fine")' },
    ],
    { onError: (e) => errors.push(e), concurrency: 2 },
  );
  assert.deepEqual(results.map((r) => [r.jobId, r.success]), [['ok-1', true], ['bad', false], ['ok-2', true]]);
  assert.equal(results[1].error, 'ZeroDivisionError: division by zero');
  assert.deepEqual(errors.map((e) => [e.jobId, e.name]), [['bad', 'ZeroDivisionError']]);
});

serverTest('README Multi-Sandbox Orchestration', async () => {
  // Create multiple sandboxes
  const [pythonSandbox, nodeSandbox] = await Promise.all([
    sdk.createSandbox({ templateId: 'python-3-11' }),
    sdk.createSandbox({ templateId: 'nodejs-18' })
  ]);

  try {
    // Run parallel tasks
    const [pythonResult, nodeResult] = await Promise.all([
      sdk.runCode(pythonSandbox.sandbox.id, 'print("Python")'),
      sdk.runCode(nodeSandbox.sandbox.id, 'console.log("Node")')
    ]);

    assert.deepEqual(pythonResult.execution.logs.stdout, ['Python']);
    assert.equal(pythonResult.metadata.language, 'python');
    assert.deepEqual(nodeResult.execution.logs.stdout, ['Node']);
    assert.equal(nodeResult.metadata.language, 'javascript');
  } finally {
    // Cleanup
    await Promise.all([
      sdk.deleteSandbox(pythonSandbox.sandbox.id),
      sdk.deleteSandbox(nodeSandbox.sandbox.id)
    ]);
  }
});

serverTest('JavaScript contexts keep state, and indented JS runs', async () => {
  const { sandbox: node } = await sdk.createSandbox({ templateId: 'nodejs-18' });
  try {
    await sdk.runCode(node.id, 'const a = 20; let b = 1;');
    const r = await sdk.runCode(node.id, `
      const c = a + 1;
      console.log(c + b)
    `);
    assert.deepEqual(r.execution.logs.stdout, ['22']);
    const value = await sdk.runCode(node.id, 'a * 2');
    assert.equal(value.execution.results.find((x) => x.isMainResult)?.text, '40');
  } finally {
    await sdk.deleteSandbox(node.id);
  }
});

serverTest('README Examples: Data Analysis', async () => {
  const tpl = await sdk.getTemplate('python-data-science');
  assert.equal(
    tpl.status,
    'ready',
    `template python-data-science is ${tpl.status}: the host needs numpy, pandas and matplotlib (Debian: python3-numpy python3-pandas python3-matplotlib)`,
  );

  const { sandbox } = await sdk.createSandbox({
    templateId: 'python-data-science',
    name: 'Data Analysis'
  });

  try {
    // The example reads data.csv from the working directory.
    await sdk.runTerminal(sandbox.id, 'printf "value\\n1\\n2\\n3\\n6\\n" > /workspace/data.csv');

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

    assert.equal(result.execution.error, undefined, JSON.stringify(result.execution.error));
    const out = result.execution.logs.stdout.join('\n');
    assert.match(out, /count\s+4(\.0+)?/);
    assert.ok(result.execution.logs.stdout.includes('Mean: 3.0'), out);

    // A matplotlib figure comes back as a PNG result.
    const pngs = [];
    const fig = await sdk.runCode(
      sandbox.id,
      'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()',
      { onResult: (r) => r.png && pngs.push(r.png) },
    );
    assert.equal(fig.execution.error, undefined, JSON.stringify(fig.execution.error));
    assert.equal(pngs.length, 1);
    assert.equal(Buffer.from(pngs[0], 'base64').subarray(1, 4).toString(), 'PNG');
  } finally {
    await sdk.deleteSandbox(sandbox.id);
  }
});

serverTest('README Examples: Web Server (express from the npm registry, served through the port proxy)', async () => {
  const { sandbox } = await sdk.createSandbox({
    templateId: 'nodejs-18',
    name: 'Express Server'
  });

  try {
    await sdk.writeFile(
      { sandboxId: sandbox.id, path: '/workspace/server.js' },
      `
const express = require('express');
const app = express();

app.get('/', (req, res) => {
  res.json({ message: 'Hello from sandbox!' });
});

app.listen(3000, () => {
  console.log('Server running on port 3000');
});
  `
    );

    // The one step the example leaves out: express comes from the npm
    // registry, through the sandbox's default egress.
    const install = await sdk.runCommand(
      sandbox.id,
      'cd /workspace && npm install --no-audit --no-fund --loglevel=error express@4',
      { timeoutMs: 240_000 },
    );
    assert.equal(install.exitCode, 0, install.stderr.join('\n'));

    const url = sdk.portUrl(sandbox.id, 3000);
    const headers = { 'X-API-Key': server().apiKey };
    async function hello() {
      for (let i = 0; i < 500; i++) {
        const res = await fetch(url, { headers });
        if (res.status === 200) return res.json();
        assert.equal(res.status, 502, await res.text()); // not listening yet
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`${url} never answered 200`);
    }

    // As written: runTerminal waits for the command, and a server never
    // ends, so the call ends at its timeout (a short one here) — while it
    // waits, the app answers through the server's port proxy.
    const short = newSDK({ timeout: 5_000, maxRetries: 0 });
    const running = short.runTerminal(sandbox.id, 'node /workspace/server.js').then(
      (out) => ({ out }),
      (err) => ({ err }),
    );
    assert.deepEqual(await hello(), { message: 'Hello from sandbox!' });
    const ended = await running;
    assert.ok(ended.err instanceof TimeoutError, `runTerminal should time out, got ${JSON.stringify(ended)}`);

    // The way to keep it running: background, then fetch it the same way.
    const proc = await sdk.runTerminal(sandbox.id, 'node /workspace/server.js', { background: true });
    assert.ok(proc.pid > 0);
    assert.deepEqual(await hello(), { message: 'Hello from sandbox!' });
    const out = await sdk.getProcessOutput(sandbox.id, proc.id);
    assert.match(JSON.stringify(out), /Server running on port 3000/);
    await sdk.killProcess(sandbox.id, proc.id);
  } finally {
    await sdk.deleteSandbox(sandbox.id);
  }
});

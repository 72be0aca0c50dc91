// Type-checked (strict) in a scratch project that installed the packed
// tarball: every public type the README names is importable, and the
// method signatures are the README's.
import SandboxSDK, {
  SandboxSDK as NamedSDK,
  SandboxSDKError,
  ConnectionError,
  TimeoutError,
  SandboxError,
  RateLimitError,
  AuthenticationError,
  ValidationError,
} from 'sdb-x-sdk';
import type {
  SandboxSDKConfig,
  CreateSandboxOptions,
  SandboxCreationResponse,
  SandboxStatus,
  SandboxConfig,
  TemplateListResponse,
  SandboxTemplate,
  TemplateConfig,
  RunCodeOptions,
  ExecutionResult,
  FileOperationOptions,
  FileListResponse,
  CreateContextOptions,
  CodeContext,
  BatchExecutionJob,
  BatchExecutionResult,
  MetricsData,
  OutputMessage,
  Result,
  ExecutionError,
  CommandResult,
} from 'sdb-x-sdk';

const config: SandboxSDKConfig = { apiKey: 'k', serverUrl: 'http://localhost:3000', logLevel: 'warn' };
const sdk: SandboxSDK = new NamedSDK(config);

export async function all(): Promise<void> {
  await sdk.waitForConnection(1000);
  const ready: boolean = sdk.isReady();
  const opts: CreateSandboxOptions = { templateId: 'python-3-11', name: 'x', expiryTime: 1, initialEnvVars: { A: 'b' } };
  const created: SandboxCreationResponse = await sdk.createSandbox(opts);
  const sb: SandboxConfig = created.sandbox;
  const status: SandboxStatus = await sdk.getSandboxStatus(sb.id);
  const st: 'creating' | 'ready' | 'running' | 'stopped' | 'error' | 'terminated' = status.status;
  const list: SandboxConfig[] = await sdk.listSandboxes();
  const page: TemplateListResponse = await sdk.getTemplates(1, 10);
  const tpl: SandboxTemplate = await sdk.getTemplate('python-3-11');
  const tc: TemplateConfig = { name: 'n', language: 'python', dependencies: ['a'] };
  const made: SandboxTemplate = await sdk.createTemplate(tc);
  const run: RunCodeOptions = {
    timeoutMs: 1,
    envs: { A: 'b' },
    language: 'python',
    context: 'ctx-1',
    onStdout: (o: OutputMessage) => void o.line.length,
    onStderr: (o: OutputMessage) => void o.timestamp.toFixed(),
    onResult: (r: Result) => void [r.text, r.html, r.png, r.svg, r.json, r.markdown, r.jpeg, r.latex],
    onError: (e: ExecutionError) => void [e.name, e.value, e.traceback],
  };
  const res: ExecutionResult = await sdk.runCode(sb.id, 'print(1)', run);
  const stdout: string[] = res.execution.logs.stdout;
  const out: string = await sdk.runTerminal(sb.id, 'ls', { timeoutMs: 5, cwd: '/tmp' });
  const cmd: CommandResult = await sdk.runCommand(sb.id, ['ls', '-l']);
  const fo: FileOperationOptions = { sandboxId: sb.id, path: '/x', encoding: 'base64', createParents: true };
  const content: string = await sdk.readFile(fo);
  const written: string = await sdk.writeFile(fo, 'x');
  await sdk.writeFile(fo, new Uint8Array([1, 2]));
  await sdk.deleteFile({ sandboxId: sb.id, path: '/x', recursive: true });
  const files: FileListResponse = await sdk.listFiles(sb.id, '/workspace');
  const name: string | undefined = files.entries[0]?.name;
  const co: CreateContextOptions = { sandboxId: sb.id, language: 'python', cwd: '/workspace' };
  const ctx: CodeContext = await sdk.createCodeContext(co);
  await sdk.runCode(sb.id, 'x', { context: ctx });
  const ctxs: CodeContext[] = await sdk.listCodeContexts(sb.id);
  await sdk.deleteCodeContext(ctx.id);
  const jobs: BatchExecutionJob[] = [{ id: 'j', code: 'x', timeout: 1, priority: 2 }];
  const results: BatchExecutionResult[] = await sdk.executeBatch(sb.id, jobs, { concurrency: 2 });
  const m: MetricsData = sdk.getMetrics();
  const nums: number[] = [m.totalRequests, m.successfulRequests, m.failedRequests, m.averageResponseTime, m.totalExecutionTime, m.activeSandboxes];
  await sdk.deleteSandbox(sb.id);
  sdk.disconnect();
  void [ready, st, list, page, tpl, made, stdout, out, cmd, content, written, name, ctxs, results, nums];

  try {
    await sdk.runCode('x', 'y');
  } catch (error) {
    if (error instanceof RateLimitError) {
      const ms: number = error.retryAfter;
      void ms;
    } else if (error instanceof ValidationError) {
      const f: string = error.field;
      void f;
    } else if (error instanceof SandboxSDKError) {
      const code: string = error.code;
      const base: Error = error;
      void [code, base];
    }
  }
  const errs: SandboxSDKError[] = [
    new ConnectionError('c'),
    new TimeoutError('t'),
    new SandboxError('s', 'not_found'),
    new AuthenticationError('a'),
    new RateLimitError('r', 5),
  ];
  void errs;
}

// sdbx JavaScript context driver.
//
// The sdbx agent starts one of these per JavaScript code context, as
//   node --expose-internals -e <bootstrap>
// where the bootstrap reads this file from fd 7 and calls it as a function
// of `require`. --expose-internals gives access to the acorn parser that
// ships inside Node (used by its own REPL); without it the driver still
// runs, with fewer rewrites. File descriptors:
//   0  /dev/null
//   1  stdout pipe   (console.*, process.stdout, subprocesses)
//   2  stderr pipe
//   3  requests from the agent, one JSON object per line
//   4  messages to the agent, one JSON object per line
//   5  the stdout pipe again, for sync markers only
//   6  the stderr pipe again, for sync markers only
//
// The request and message formats and the sync markers are the same as in
// the Python driver (python/driver.py): before every message the driver
// waits until process.stdout/stderr have no queued writes; before one with
// "sync": K (all but "done") it writes "\0sdbx-sync:TOKEN:K\n" to fd 5 and
// fd 6.
//
// Code runs in the driver's own global context (vm.runInThisContext), so
// values made by Node's modules (errors, buffers) are instances of the
// same classes as the code's own. Top-level let/const/class declarations
// are rewritten to assignments of global properties, so running a cell
// twice works; a cell with top-level await runs as an async function whose
// var and function declarations are made global the same way.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const readline = require('readline');
const util = require('util');
const vm = require('vm');
const { createRequire } = require('module');

const REQ_FD = 3;
const MSG_FD = 4;
const OUT_FD = 5;
const ERR_FD = 6;
const DRIVER_FILE = 'sdbx-driver.js';
// Result messages longer than this (in UTF-16 units) are replaced by
// their text form.
const MAX_MESSAGE = 16 << 20;
const TOKEN = process.env.SDBX_KERNEL_TOKEN || '';
delete process.env.SDBX_KERNEL_TOKEN;

let seq = 0;
let current = null; // the running execution: {id}
let onInterrupt = null; // rejects the awaited promise of an async cell
let acorn; // undefined: not loaded yet; null: not available

// ---- messages -----------------------------------------------------------

function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

function stdPending() {
  return process.stdout.writableLength > 0 || process.stderr.writableLength > 0;
}

function stdDrained() {
  const waits = [];
  for (const s of [process.stdout, process.stderr]) {
    if (s.writableLength > 0) waits.push(new Promise((resolve) => s.once('drain', resolve)));
  }
  return Promise.all(waits);
}

const outbox = [];
let flushing = false;

function writeMessage(msg) {
  if (msg.type !== 'done') {
    seq++;
    const mark = Buffer.from('\0sdbx-sync:' + TOKEN + ':' + seq + '\n');
    let ok = true;
    for (const fd of [OUT_FD, ERR_FD]) {
      try {
        writeAll(fd, mark);
      } catch {
        ok = false;
      }
    }
    if (ok) msg.sync = seq;
  }
  let line = JSON.stringify(msg);
  if (line.length > MAX_MESSAGE && msg.type === 'result') {
    const text = String(msg.data['text/plain'] || '').slice(0, 65536);
    msg.data = { 'text/plain': text + '\n[sdbx: result too large, only its text is shown]' };
    line = JSON.stringify(msg);
  }
  writeAll(MSG_FD, Buffer.from(line + '\n'));
}

// send queues msg and writes it once the stdout/stderr writes queued
// before it have reached their pipes.
function send(msg) {
  outbox.push(msg);
  flushOutbox();
}

function flushOutbox() {
  if (flushing) return;
  while (outbox.length > 0) {
    if (stdPending()) {
      flushing = true;
      stdDrained().then(() => {
        flushing = false;
        flushOutbox();
      });
      return;
    }
    writeMessage(outbox.shift());
  }
}

// ---- rich results -------------------------------------------------------

function inspect(value) {
  return util.inspect(value, { colors: false });
}

function display(value, options) {
  if (current === null) return;
  if (options && options.raw && value && typeof value === 'object') {
    const data = {};
    for (const [mime, v] of Object.entries(value)) {
      data[mime] = typeof v === 'string' || mime.endsWith('json') ? v : String(v);
    }
    send({ type: 'result', id: current.id, data, main: false });
    return;
  }
  send({ type: 'result', id: current.id, data: { 'text/plain': inspect(value) }, main: false });
}

function cleanStack(stack) {
  const lines = String(stack).split('\n');
  const frame = (l) => /^\s+at /.test(l);
  let lastCell = -1;
  lines.forEach((l, i) => {
    if (frame(l) && l.includes('<cell-')) lastCell = i;
  });
  if (lastCell >= 0) return lines.slice(0, lastCell + 1).join('\n');
  // No frame of the code (an interrupt, an error from a callback): drop
  // the frames of the driver and of Node's own machinery.
  const internal = (l) => l.includes(DRIVER_FILE) || /\(?node:(?:vm|events|internal\/)/.test(l);
  return lines.filter((l) => !(frame(l) && internal(l))).join('\n');
}

function sendError(e) {
  if (current === null) return;
  let name = 'Error';
  let value;
  let traceback;
  if (e instanceof Error || util.types.isNativeError(e)) {
    name = String(e.name || 'Error');
    value = String(e.message);
    traceback = cleanStack(e.stack || name + ': ' + value);
  } else {
    value = typeof e === 'string' ? e : inspect(e);
    traceback = 'Uncaught ' + inspect(e);
  }
  send({ type: 'error', id: current.id, name, value, traceback });
}

// ---- code rewriting -----------------------------------------------------

function loadAcorn() {
  if (acorn === undefined) {
    try {
      acorn = require('internal/deps/acorn/acorn/dist/acorn');
    } catch {
      acorn = null;
    }
  }
  return acorn;
}

const FUNCTIONS = new Set(['FunctionDeclaration', 'FunctionExpression', 'ArrowFunctionExpression']);

function hasTopLevelAwait(node) {
  if (node === null || typeof node !== 'object') return false;
  if (Array.isArray(node)) return node.some(hasTopLevelAwait);
  if (typeof node.type !== 'string') return false;
  if (node.type === 'AwaitExpression') return true;
  if (node.type === 'ForOfStatement' && node.await) return true;
  if (FUNCTIONS.has(node.type)) return false;
  for (const key of Object.keys(node)) {
    const v = node[key];
    if (v !== null && typeof v === 'object' && hasTopLevelAwait(v)) return true;
  }
  return false;
}

function patternNames(node, out) {
  if (!node) return;
  switch (node.type) {
    case 'Identifier':
      out.add(node.name);
      break;
    case 'ObjectPattern':
      for (const p of node.properties) patternNames(p.type === 'RestElement' ? p.argument : p.value, out);
      break;
    case 'ArrayPattern':
      for (const el of node.elements) patternNames(el, out);
      break;
    case 'RestElement':
      patternNames(node.argument, out);
      break;
    case 'AssignmentPattern':
      patternNames(node.left, out);
      break;
  }
}

// prepare returns the code to run and whether it evaluates to a promise of
// the cell's value. Line numbers are kept: rewrites never add or remove
// line breaks before the code's last line.
function prepare(code) {
  if (!/\b(?:let|const|class|await|var|function)\b/.test(code)) return { code, async: false };
  const parser = loadAcorn();
  if (parser === null) {
    if (/\bawait\b/.test(code)) return { code: '(async () => {' + code + '\n})()', async: true };
    return { code, async: false };
  }
  let program;
  try {
    program = parser.parse(code, {
      ecmaVersion: 'latest',
      sourceType: 'script',
      allowAwaitOutsideFunction: true,
      allowHashBang: true,
    });
  } catch {
    // V8 reports the syntax error (or runs syntax this acorn is too old for).
    return { code, async: false };
  }
  const isAsync = hasTopLevelAwait(program.body);
  const edits = [];
  const vars = new Set();
  const fns = [];
  const src = (n) => code.slice(n.start, n.end);
  for (const s of program.body) {
    if (s.type === 'VariableDeclaration') {
      if (s.kind === 'var') {
        if (!isAsync) continue;
        for (const d of s.declarations) patternNames(d.id, vars);
      }
      const decls = s.declarations;
      edits.push({ start: s.start, end: decls[0].start, text: 'void (' });
      for (const d of decls) {
        if (!d.init && s.kind !== 'var') edits.push({ start: d.end, end: d.end, text: ' = undefined' });
      }
      edits.push({ start: decls[decls.length - 1].end, end: s.end, text: ');' });
    } else if (s.type === 'ClassDeclaration') {
      edits.push({ start: s.start, end: s.end, text: 'void (' + s.id.name + ' = ' + src(s) + ');' });
    } else if (s.type === 'FunctionDeclaration' && isAsync) {
      fns.push(s.id.name);
    }
  }
  if (!isAsync) return { code: applyEdits(code, edits), async: false };

  const last = program.body[program.body.length - 1];
  if (last && last.type === 'ExpressionStatement') {
    edits.push({ start: last.start, end: last.end, text: 'return (' + src(last.expression) + ');' });
  }
  let head = '';
  if (vars.size > 0) head += 'var ' + [...vars].join(', ') + '; ';
  head += '(async () => {';
  for (const f of fns) head += ' globalThis[' + JSON.stringify(f) + '] = ' + f + ';';
  return { code: head + applyEdits(code, edits) + '\n})()', async: true };
}

function applyEdits(code, edits) {
  edits.sort((a, b) => a.start - b.start);
  let out = '';
  let pos = 0;
  for (const e of edits) {
    out += code.slice(pos, e.start) + e.text;
    pos = e.end;
  }
  return out + code.slice(pos);
}

// ---- execution ----------------------------------------------------------

function interruptible(promise) {
  return new Promise((resolve, reject) => {
    onInterrupt = () => {
      const e = new Error('Script execution interrupted.');
      e.code = 'ERR_SCRIPT_EXECUTION_INTERRUPTED';
      reject(e);
    };
    Promise.resolve(promise).then(resolve, reject);
  }).finally(() => {
    onInterrupt = null;
  });
}

const scriptOptions = {};
if (vm.constants && vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER) {
  scriptOptions.importModuleDynamically = vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER;
}

async function runCell(code, count) {
  const filename = '<cell-' + count + '>';
  let value;
  try {
    const prepared = prepare(code);
    const script = new vm.Script(prepared.code, { filename, ...scriptOptions });
    value = script.runInThisContext({ breakOnSigint: true });
    if (prepared.async) value = await interruptible(value);
  } catch (e) {
    sendError(e);
    return;
  }
  if (value !== undefined) {
    let text;
    try {
      text = inspect(value);
    } catch (e) {
      text = '<inspect failed: ' + e + '>';
    }
    send({ type: 'result', id: current.id, data: { 'text/plain': text }, main: true });
  }
}

async function execute(req) {
  current = { id: req.id };
  const env = req.env || {};
  const saved = {};
  for (const [k, v] of Object.entries(env)) {
    saved[k] = Object.prototype.hasOwnProperty.call(process.env, k) ? process.env[k] : undefined;
    process.env[k] = v;
  }
  try {
    await runCell(String(req.code || ''), Number(req.count) || 0);
  } finally {
    for (const [k, old] of Object.entries(saved)) {
      if (old === undefined) delete process.env[k];
      else process.env[k] = old;
    }
    send({ type: 'done', id: current.id });
    current = null;
  }
}

function main() {
  const cwd = process.cwd();
  const userRequire = createRequire(cwd + '/');
  const userModule = { exports: {}, require: userRequire, id: '.', filename: path.join(cwd, '[context]'), path: cwd };
  Object.assign(globalThis, {
    require: userRequire,
    module: userModule,
    exports: userModule.exports,
    __dirname: cwd,
    __filename: userModule.filename,
    display,
  });

  process.on('SIGINT', () => {
    if (onInterrupt !== null) onInterrupt();
  });
  process.on('uncaughtException', (e) => {
    process.stderr.write('Uncaught ' + (e && e.stack ? cleanStack(e.stack) : inspect(e)) + '\n');
  });
  process.on('unhandledRejection', (e) => {
    process.stderr.write('Uncaught (in promise) ' + (e && e.stack ? cleanStack(e.stack) : inspect(e)) + '\n');
  });

  const input = new net.Socket({ fd: REQ_FD, readable: true, writable: false });
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  let chain = Promise.resolve();
  lines.on('line', (line) => {
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      process.stderr.write('sdbx driver: bad request: ' + e.message + '\n');
      return;
    }
    if (req.type !== 'execute') return;
    chain = chain
      .then(() => execute(req))
      .catch((e) => process.stderr.write('sdbx driver: ' + (e && e.stack ? e.stack : e) + '\n'));
  });
  lines.on('close', () => process.exit(0));

  writeAll(MSG_FD, Buffer.from(JSON.stringify({ type: 'ready', pid: process.pid, version: process.versions.node }) + '\n'));
}

main();

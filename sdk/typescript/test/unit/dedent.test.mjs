// The dedent applied to code before it is sent (src/code.ts, compiled here
// with the TypeScript compiler, as it is internal to the package).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ts = require('typescript');
const src = readFileSync(new URL('../../src/code.ts', import.meta.url), 'utf8');
const js = ts.transpileModule(src, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
const { dedent } = await import('data:text/javascript,' + encodeURIComponent(js));

test('the Quick Start code is dedented', () => {
  const code = `
  print("Hello from sandbox!")
  x = 10 + 20
  print(f"Result: {x}")
`;
  assert.equal(dedent(code), '\nprint("Hello from sandbox!")\nx = 10 + 20\nprint(f"Result: {x}")\n');
});

test('nested indentation is kept relative to the common prefix', () => {
  const code = '\n    def f():\n        return 1\n\n    print(f())\n  ';
  assert.equal(dedent(code), '\ndef f():\n    return 1\n\nprint(f())\n');
});

test('code starting in column 0 is unchanged', () => {
  for (const code of ['x = 1\n  y = 2', 'print(1)', 'for i in range(2):\n    print(i)', '', '\n\n']) {
    assert.equal(dedent(code), code);
  }
});

test('a line less indented than the first limits the cut', () => {
  assert.equal(dedent('    a\n  b\n    c'), '  a\nb\n  c');
});

test('tabs and spaces: only a shared prefix is removed', () => {
  assert.equal(dedent('\tx = 1\n\ty = 2'), 'x = 1\ny = 2');
  assert.equal(dedent('\tx\n  y'), '\tx\n  y');
});

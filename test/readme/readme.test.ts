// The README's examples are code that runs. A ```ts block after `<!-- example: NAME -->` in
// README.md must equal, verbatim, the region(s) of a test between `// README example: NAME` and
// `// end README example` (compared without whitespace, import lines and trailing commas, so
// prettier's line breaks at a different indent do not matter). Those tests run the regions
// against a real database. Also checks the order of the README's sections.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/node.js';

const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The marked examples of the README, by name. */
export function readmeExamples(text = README): Map<string, string> {
  const examples = new Map<string, string>();
  for (const match of text.matchAll(/<!-- example: ([\w-]+) -->\s*```ts\n([\s\S]*?)```/g)) {
    assert.ok(!examples.has(match[1]!), `README example "${match[1]}" is marked twice`);
    examples.set(match[1]!, match[2]!);
  }
  return examples;
}

function testSources(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const full = path.join(dir, entry);
    if (entry === 'fixtures') return [];
    if (statSync(full).isDirectory()) return testSources(full);
    return entry.endsWith('.ts') ? [full] : [];
  });
}

/** The mirrored regions of the test sources, by name (several regions of one name concatenate). */
export function mirroredRegions(): Map<string, { code: string; file: string }> {
  const regions = new Map<string, { code: string; file: string }>();
  for (const file of testSources(path.join(ROOT, 'test'))) {
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(
      /\/\/ README example: ([\w-]+)\n([\s\S]*?)\/\/ end README example/g,
    )) {
      const existing = regions.get(match[1]!);
      regions.set(match[1]!, {
        code: (existing?.code ?? '') + match[2]!,
        file: path.relative(ROOT, file),
      });
    }
  }
  return regions;
}

export function normalizeCode(code: string): string {
  return code
    .replace(/^import\s[\s\S]*?from\s*'[^']+';$/gm, '')
    .replace(/\s+/g, '')
    .replace(/,([)\]}])/g, '$1');
}

/** Oban's README order; other sections may sit between these. */
const SECTION_ORDER: [string, RegExp][] = [
  ['configuring queues', /^Configuration/],
  ['defining workers', /^Defining workers/],
  ['enqueueing', /^Enqueueing/],
  ['pruning', /^Pruning/],
  ['unique jobs', /^Unique jobs/],
  ['periodic jobs', /^Periodic jobs/],
  ['priorities', /^Priorities/],
  ['testing', /^Testing/],
  ['error handling', /^Error handling/],
  ['instrumentation', /^Instrumentation/],
  ['isolation', /^Isolation/],
];

describe('README', function () {
  it('has the sections of the Oban README, in its order', function () {
    const headings = [...README.matchAll(/^## (.+)$/gm)].map((m) => m[1]!);
    const positions = SECTION_ORDER.map(([name, pattern]) => {
      const matching = headings.filter((h) => pattern.test(h));
      assert.equal(
        matching.length,
        1,
        `README needs exactly one section for ${name} (a placeholder left beside the real one?); headings: ${headings.join(', ')}`,
      );
      return headings.indexOf(matching[0]!);
    });
    const sorted = [...positions].sort((x, y) => x - y);
    assert.deepEqual(
      positions.map((p) => headings[p]),
      sorted.map((p) => headings[p]),
      'sections out of order',
    );
  });

  it('every marked example is mirrored verbatim by a test, and every mirror by an example', function () {
    const examples = readmeExamples();
    const regions = mirroredRegions();
    assert.ok(examples.size > 0);
    for (const [name, code] of examples) {
      const region = regions.get(name);
      assert.ok(region, `README example "${name}" has no test region "// README example: ${name}"`);
      assert.equal(
        normalizeCode(region.code),
        normalizeCode(code),
        `README example "${name}" differs from its test region in ${region.file}`,
      );
    }
    for (const [name, region] of regions) {
      assert.ok(examples.has(name), `${region.file} mirrors "${name}", which the README lacks`);
    }
  });

  it('the comparison is strict enough to fail', function () {
    const examples = readmeExamples('<!-- example: x -->\n```ts\nconst a = f(1, 2);\n```\n');
    const code = examples.get('x')!;
    assert.equal(normalizeCode(code), normalizeCode('const a = f(\n  1,\n  2,\n);'));
    assert.notEqual(normalizeCode(code), normalizeCode('const a = f(1, 3);'));
  });
});

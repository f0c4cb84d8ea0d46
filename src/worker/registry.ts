// Loads the worker definitions of one folder, once per thread (and once on the main thread for
// defaults, timeouts and backoff). A job names a worker; only names registered here can run,
// so a job row can never make us load a file.

import { existsSync, readdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isPlainIdentifier, MAX_QUEUE_LENGTH } from '../db/identifiers.js';
import { describe, isPlainObject, rejectUnknownKeys } from '../config/validate.js';
import { MAX_ATTEMPTS_LIMIT, tagsProblem } from '../jobs/insert.js';
import { uniqueSpec } from '../jobs/unique.js';
import type { WorkerDefinition } from './define.js';

/** The keys of a WorkerDefinition (src/worker/define.ts). */
const DEFINITION_KEYS = [
  'name',
  'queue',
  'maxAttempts',
  'priority',
  'tags',
  'timeout',
  'backoff',
  'unique',
  'validate',
  'perform',
] as const;

export class WorkerLoadError extends Error {
  override name = 'WorkerLoadError';
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

export interface RegisteredWorker {
  definition: WorkerDefinition<never>;
  file: string;
  /** Whether perform can see its second argument, the abort signal (see takesSignal). */
  takesSignal: boolean;
}

/**
 * Whether a perform function may read its second argument. Making an AbortSignal costs ~3 us in
 * Node 20 (it is built on first read of `controller.signal`): bench W2 found it 19% of the worker
 * thread's time for a no-op job, and W2 ran 13% faster without it. So a perform declared with
 * one parameter gets none, and anything that might read a second argument gets one.
 * Only shapes known to take one plain parameter go without: the source must begin with a
 * function, method or arrow head whose parameter list is one name (or a destructuring of plain
 * names, or nothing), with no comment, string, default or rest in it, and must not mention
 * `arguments` or `eval` (nor hold a `\u` escape, which can spell them). Anything else gets the
 * signal: two or more declared parameters, a default or rest, a comment or a string in the head
 * (a `)` or `=>` in one fooled a search for the first parenthesis), a computed method name, or
 * a function whose source is hidden or cannot be read (bound, native, a Proxy).
 */
export function takesSignal(definition: { perform: unknown }): boolean {
  try {
    // Read as a value, never called here: only its declared length and source matter.
    const perform = definition.perform;
    if (typeof perform !== 'function' || perform.length >= 2) return true;
    const source = functionSource(perform);
    if (/\[native code\]|\barguments\b|\beval\b|\\u/.test(source)) return true;
    return !ONE_PARAMETER.test(source);
  } catch {
    return true;
  }
}

// Taken when this module loads, before any worker module could replace it.
// eslint-disable-next-line @typescript-eslint/unbound-method -- bound to each function by call
const functionSource = Function.prototype.call.bind(Function.prototype.toString) as (
  fn: unknown,
) => string;
const NAME = String.raw`[A-Za-z_$][\w$]*`;
/** `job`, `{ args, id: key }` or `[a, b]`: plain names only (no default, rest or nesting). */
const PARAMETER = String.raw`(?:${NAME}|\{\s*(?:${NAME}(?:\s*:\s*${NAME})?\s*(?:,\s*|(?=\})))*\}|\[\s*(?:${NAME}\s*(?:,\s*|(?=\])))*\])`;
const LIST = String.raw`\(\s*(?:${PARAMETER}\s*)?\)`;
const ONE_PARAMETER = new RegExp(
  String.raw`^(?:` +
    // function perform(job) {, async function* (job) {
    String.raw`(?:async\s+)?function\s*(?:\*\s*)?(?:${NAME}\s*)?${LIST}\s*\{` +
    // perform(job) {, async *perform(job) { (a method)
    String.raw`|(?:async\s+)?(?:\*\s*)?${NAME}\s*${LIST}\s*\{` +
    // (job) =>, job =>, async job =>
    String.raw`|(?:async\s*)?(?:${LIST}|${NAME})\s*=>)`,
);

const WORKER_NAME = /^[A-Za-z0-9_.:-]{1,255}$/;

/** A `.ts` worker runs from its compiled copy under dist/ (tsconfig rootDir is the project). */
function compiledPath(file: string): string | null {
  let dir = path.dirname(file);
  while (dir !== path.dirname(dir)) {
    if (existsSync(path.join(dir, 'tsconfig.json'))) {
      return path.join(dir, 'dist', path.relative(dir, file)).replace(/\.ts$/, '.js');
    }
    dir = path.dirname(dir);
  }
  return null;
}

export function workerFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  if (dir.split(path.sep).includes('dist')) {
    return readdirSync(dir)
      .filter((f) => /\.[cm]?js$/.test(f))
      .sort()
      .map((f) => path.join(dir, f));
  }
  return (
    readdirSync(dir)
      // .cjs too: a CommonJS worker was skipped unseen, and every job of it failed as unknown.
      .filter((f) => /\.([cm]?js|ts)$/.test(f) && !f.endsWith('.d.ts'))
      .sort()
      .map((f) => path.join(dir, f))
  );
}

export function validateDefinition(value: unknown, file: string): WorkerDefinition<never> {
  const fail = (why: string): never => {
    throw new WorkerLoadError(`${file}: ${why}`, file);
  };
  if (value === null || typeof value !== 'object')
    fail('does not export a worker definition (default export or `worker`)');
  const def = value as Record<string, unknown>;
  if (typeof def.name !== 'string' || !WORKER_NAME.test(def.name))
    fail('worker `name` must be 1-255 characters of A-Z a-z 0-9 _ . : -');
  if (typeof def.perform !== 'function')
    fail(`worker "${String(def.name)}" has no perform function`);
  if (
    def.queue !== undefined &&
    (typeof def.queue !== 'string' || !isPlainIdentifier(def.queue, MAX_QUEUE_LENGTH))
  ) {
    fail(`worker "${String(def.name)}": queue must be a plain lower-case identifier`);
  }
  if (
    def.priority !== undefined &&
    !(
      Number.isInteger(def.priority) &&
      (def.priority as number) >= 0 &&
      (def.priority as number) <= 3
    )
  ) {
    fail(`worker "${String(def.name)}": priority must be an integer from 0 to 3`);
  }
  if (def.tags !== undefined) {
    const problem = tagsProblem(def.tags);
    if (problem !== null) fail(`worker "${String(def.name)}": tags: ${problem}`);
  }
  if (
    def.maxAttempts !== undefined &&
    !(
      Number.isInteger(def.maxAttempts) &&
      (def.maxAttempts as number) >= 1 &&
      (def.maxAttempts as number) <= MAX_ATTEMPTS_LIMIT
    )
  ) {
    fail(
      `worker "${String(def.name)}": maxAttempts must be an integer from 1 to ${MAX_ATTEMPTS_LIMIT}, got ${typeof def.maxAttempts === 'number' ? String(def.maxAttempts) : describe(def.maxAttempts)}`,
    );
  }
  // Checked here as an insert would (keys excepted: they name args, which only an insert has),
  // so a bad `unique` stops the load rather than failing every insert of the worker.
  if (def.unique !== undefined && def.unique !== false) {
    const { keys } = isPlainObject(def.unique) ? def.unique : { keys: undefined };
    const args = Object.fromEntries(
      (Array.isArray(keys) ? keys : []).map((k: unknown) => [String(k), null]),
    );
    try {
      uniqueSpec(def.unique, { worker: String(def.name), queue: 'default', args });
    } catch (error) {
      fail(`worker "${String(def.name)}": ${(error as Error).message}`);
    }
  }
  for (const key of ['backoff', 'validate'] as const) {
    const option = def[key];
    if (option !== undefined && typeof option !== 'function') {
      fail(`worker "${String(def.name)}": ${key} must be a function`);
    }
  }
  // A number is checked here, once: a negative, NaN or string timeout ran every job with no
  // timeout, with a warning per job that blamed a "timeout function".
  if (
    def.timeout !== undefined &&
    typeof def.timeout !== 'function' &&
    !(typeof def.timeout === 'number' && Number.isFinite(def.timeout) && def.timeout >= 0)
  ) {
    fail(
      `worker "${String(def.name)}": timeout must be a number of ms (0: none) or a function of the job, got ${typeof def.timeout === 'number' ? String(def.timeout) : describe(def.timeout)}`,
    );
  }
  // In a .js or .mjs file no compiler catches a misspelt key (maxAttemps, backof): it was
  // ignored, and the worker ran with the default it meant to change.
  rejectUnknownKeys(def, DEFINITION_KEYS, `worker "${String(def.name)}"`, fail);
  return def as unknown as WorkerDefinition<never>;
}

export async function loadWorkers(dir: string): Promise<Map<string, RegisteredWorker>> {
  const workers = new Map<string, RegisteredWorker>();
  // Absolute, so compiledPath finds the project's tsconfig.json even for a relative folder
  // (`workers` from the project root: its parent is `.`, where the upward search stopped).
  for (const file of workerFiles(path.resolve(dir))) {
    let target = file;
    if (file.endsWith('.ts')) {
      const compiled = compiledPath(file);
      if (!compiled || !existsSync(compiled)) {
        throw new WorkerLoadError(
          `${file}: not compiled (expected ${compiled ?? 'a dist/ copy'}); run npm run build`,
          file,
        );
      }
      target = compiled;
    }
    let module: Record<string, unknown>;
    try {
      module = (await import(pathToFileURL(target).href)) as Record<string, unknown>;
    } catch (error) {
      throw new WorkerLoadError(`${file}: cannot be loaded: ${(error as Error).message}`, file);
    }
    const definition = validateDefinition(module.default ?? module.worker, file);
    const existing = workers.get(definition.name);
    if (existing)
      throw new WorkerLoadError(
        `${file}: worker "${definition.name}" is already defined in ${existing.file}`,
        file,
      );
    workers.set(definition.name, {
      definition,
      file: target,
      takesSignal: takesSignal(definition),
    });
  }
  return workers;
}

/**
 * loadWorkers for a folder that must exist, as the client's and a node's do: a misspelt path
 * would silently leave no workers (a node then failed every job it fetched as unknown). `hint`
 * says how a relative path was resolved, when one was given.
 */
export async function loadWorkerFolder(
  dir: string,
  hint: string | null,
): Promise<Map<string, RegisteredWorker>> {
  const where = `workers: ${dir}`;
  let isFolder: boolean;
  try {
    isFolder = (await stat(dir)).isDirectory();
  } catch (error) {
    throw new WorkerLoadError(
      `${where}: no such folder (${(error as Error).message})${hint ? `; ${hint}` : ''}`,
      dir,
    );
  }
  if (!isFolder) throw new WorkerLoadError(`${where}: not a folder`, dir);
  return loadWorkers(dir);
}

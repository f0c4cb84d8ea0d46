// The file piscina loads in each worker thread. CommonJS on purpose: piscina require()s a
// thread's entry file first and falls back to import() only if that fails, and on Node 20 a
// require() of an ES module can abort the whole process from inside V8 (seen in the test suite:
// "FATAL ERROR: v8::Module::IsGraphAsync must be used on an instantiated module", and once
// "CreateRequiredModuleFacade"), taking every job of the node down with it. A CommonJS file is
// required safely; it imports the runner, an ES module, the supported way. The import starts as
// the thread starts, so the workers load before the first job, as before.

const runner = import('./runner.js');
// Should the runner itself fail to load (a broken install), every task fails with the reason;
// this only keeps the rejection from being unhandled before the first task.
runner.catch(() => undefined);

async function runBatch(task: unknown): Promise<unknown> {
  const { default: run } = await runner;
  return run(task as Parameters<typeof run>[0]);
}

export = runBatch;

#!/usr/bin/env node
// Starts a quern node (or runs a CLI command) from the compiled code in dist/.
let finished = false;
// The event loop ran dry before the command finished: something it awaits can never settle (a
// worker module whose top-level await never resolves, say). Node would exit 0 in silence, which
// a supervisor reads as a clean stop.
process.on('beforeExit', () => {
  if (finished) return;
  console.error(
    'error: the command stopped before it finished: something it was waiting for can never ' +
      'happen (a module of the workers folder whose top-level await never settles?)',
  );
  process.exit(1);
});
import('./dist/src/cli/main.js')
  .then((cli) => cli.main(process.argv.slice(2)))
  .then((code) => {
    finished = true;
    if (typeof code === 'number') process.exitCode = code;
    // Done: a timer or connection left open by user code (a worker module imported to read its
    // defaults, say) must not keep the command from ending. Nothing else is waited for, so a
    // process with nothing left open exits at once, as before.
    setTimeout(() => process.exit(), 1000).unref();
  })
  .catch((error) => {
    finished = true;
    console.error(error);
    process.exit(1);
  });

#!/usr/bin/env node
// Starts a quern node (or runs a CLI command) from the compiled code in dist/.
import('./dist/src/cli/main.js')
  .then((cli) => cli.main(process.argv.slice(2)))
  .then((code) => {
    if (typeof code === 'number') process.exitCode = code;
    // Done: a timer or connection left open by user code (a worker module imported to read its
    // defaults, say) must not keep the command from ending. Nothing else is waited for, so a
    // process with nothing left open exits at once, as before.
    setTimeout(() => process.exit(), 1000).unref();
  })
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });

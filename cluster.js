#!/usr/bin/env node
// Starts a quern node (or runs a CLI command) from the compiled code in dist/.
import('./dist/src/cli/main.js')
  .then((cli) => cli.main(process.argv.slice(2)))
  .then((code) => {
    if (typeof code === 'number') process.exitCode = code;
  })
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });

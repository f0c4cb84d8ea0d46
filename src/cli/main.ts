// `node cluster.js [command] [options]`: starts a node, or runs one of the commands. Bad
// arguments print the usage and exit 2; configuration and database errors exit 1.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../config/validate.js';
import { DatabaseConfigError } from '../db/connect.js';
import { MigrationError } from '../db/migrate.js';
import { InsertError } from '../jobs/insert.js';
import { WorkerLoadError } from '../worker/registry.js';
import { CommandError, UsageError } from './context.js';
import { COMMANDS } from './commands.js';

export const USAGE = `Usage: node cluster.js [command] [options]

Commands:
  start                       start a node (the default)
  migrate [--down N]          apply migrations, or roll back to version N
  insert WORKER [ARGS_JSON]   insert a job and print its id
        [--queue Q] [--priority 0-3] [--schedule-in SECONDS] [--max-attempts N] [--tags a,b]
        [--any-worker]              (without it, WORKER must be defined in the workers folder)
  enqueue-dir DIR [--worker W] [--wait]  insert one job per file under DIR (hash-file by
                              default); --wait: follow them until all are finished
  jobs [--state S] [--queue Q] [--worker W] [--limit N]   list jobs
  job show|cancel|retry ID    one job
  queue pause|resume|stop QUEUE [--node NAME]
  queue scale|start QUEUE --limit N [--node NAME]
  status [--watch]            nodes, queues, the leader and job counts (--watch: live, each second)
  stats [--json]              per queue and worker: counts by state, completed and failed in
                              the last minute and hour, p50/p95 queue and run times

Options:
  --config PATH               configuration file (default ./cluster.config.json)
  --prefix SCHEMA             the schema to use instead of the configuration's "schema"
  --help                      this text

Environment: DATABASE_URL (overrides database.url), NODE_NAME, LOG_LEVEL.
With no database configured, an embedded PostgreSQL runs with its data in .data/.`;

/** The options every command takes that are followed by a value. */
const GLOBAL_VALUE_OPTIONS = ['--config', '--prefix'];

export interface CommandContext {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
}

export interface Command {
  options: ParseArgsConfig['options'];
  run(context: CommandContext): Promise<number>;
}

export async function main(argv: string[]): Promise<number> {
  // The command is the first word that is not an option or the value of a global option
  // (--config, --prefix), so that `--config X insert ...` runs insert (it used to start a node
  // and ignore the rest) and `--prefix tenant_a` starts a node (it was "unknown command").
  let index = 0;
  while (index < argv.length && argv[index]!.startsWith('-'))
    index += GLOBAL_VALUE_OPTIONS.includes(argv[index]!) ? 2 : 1;
  const found = argv[index];
  const name = found ?? 'start';
  const rest = found === undefined ? argv : [...argv.slice(0, index), ...argv.slice(index + 1)];
  if (rest.includes('--help') || rest.includes('-h') || name === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const command = COMMANDS[name];
  try {
    if (!command) throw new UsageError(`unknown command "${name}"`);
    let parsed;
    const options: ParseArgsConfig['options'] = {
      config: { type: 'string' },
      prefix: { type: 'string' },
      help: { type: 'boolean' },
      ...command.options,
    };
    try {
      parsed = parseArgs({
        args: withNegativeValues(rest, options),
        options,
        allowPositionals: true,
        strict: true,
        tokens: true,
      });
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    // parseArgs keeps the last of an option given twice (`--queue a --queue b` inserted into b):
    // which one was meant is not known, so it is a usage error. No option is `multiple`.
    const seen = new Map<string, string>();
    for (const token of parsed.tokens) {
      if (token.kind !== 'option') continue;
      const given = token.value === undefined ? token.rawName : `${token.rawName} ${token.value}`;
      const before = seen.get(token.name);
      if (before !== undefined)
        throw new UsageError(`--${token.name}: given more than once (${before}, ${given})`);
      seen.set(token.name, given);
    }
    return await command.run({
      positionals: parsed.positionals,
      // No option is `multiple`, so no value is an array.
      values: parsed.values as Record<string, string | boolean | undefined>,
    });
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`error: ${error.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (
      error instanceof CommandError ||
      error instanceof ConfigError ||
      error instanceof InsertError ||
      error instanceof DatabaseConfigError ||
      error instanceof MigrationError ||
      error instanceof WorkerLoadError
    ) {
      process.stderr.write(`error: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(
      `error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return 1;
  }
}

/**
 * `--priority -1` as `--priority=-1`: parseArgs takes a value that starts with a dash for an
 * option and refuses it as ambiguous, so the command's own range check never saw it. Only a
 * number after an option that takes a value is joined to it.
 */
function withNegativeValues(args: string[], options: ParseArgsConfig['options']): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const name = arg.startsWith('--') ? arg.slice(2) : null;
    const next = args[i + 1];
    if (name && options?.[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

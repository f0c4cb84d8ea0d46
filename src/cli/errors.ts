// The errors a command ends with, by exit code: a usage error exits 2, a CommandError 1 with its
// message alone.

export class UsageError extends Error {
  override name = 'UsageError';
}

/** A failure of the command that is not a usage error: its message alone, exit 1. */
export class CommandError extends Error {
  override name = 'CommandError';
}

// Turns the medians into figures (each with its ratio to the best peer and, where the issue sets
// one, its target) and renders them as one Markdown table.

import type { Limit } from './pgbench.js';

const US = 'quern';
const PEERS = ['graphile-worker', 'pg-boss'];

/** 'neither': a reading about the run (how busy the machine was), not a score. */
type Better = 'higher' | 'lower' | 'neither';

export interface Figure {
  key: string;
  label: string;
  better: Better;
  values: Record<string, number | null>;
  /** quern ÷ the best peer's figure (best = highest or lowest, as `better` says). */
  ratio: number | null;
  target: string | null;
  met: boolean | null;
}

type Medians = Record<string, Record<string, number>>;

interface Row {
  key: string;
  label: string;
  better: Better;
  target?: (
    f: Omit<Figure, 'target' | 'met'>,
    m: Medians,
    limits: Limits,
  ) => [string, boolean | null];
}
type Limits = { single: Limit; batched: Limit } | null;

const ROWS: Row[] = [
  {
    key: 'w1.bulk',
    label: 'W1 bulk insert, batches of 1,000 (jobs/s)',
    better: 'higher',
    target: (f) => ['≥ 1.5× best peer', f.ratio === null ? null : f.ratio >= 1.5],
  },
  {
    key: 'w1.single',
    label: 'W1 single inserts, 20 in flight (jobs/s)',
    better: 'higher',
    target: (f) => ['≥ best peer', f.ratio === null ? null : f.ratio >= 1],
  },
  {
    key: 'w2.rate',
    label: 'W2 drain, limit 20, 1 node, warm (jobs/s)',
    better: 'higher',
    target: (f, _m, limits) => {
      const us = f.values[US] ?? null;
      const graphile = f.values['graphile-worker'] ?? null;
      const half = limits ? limits.batched.jobsPerSecond / 2 : null;
      const vsGraphile = us !== null && graphile !== null ? us / graphile : null;
      const text = `≥ 1.5× graphile (${vsGraphile === null ? '?' : vsGraphile.toFixed(2) + '×'}), ≥ ½ pgbench 100/stmt (${us !== null && limits ? ((us / limits.batched.jobsPerSecond) * 100).toFixed(0) + '%' : '?'})`;
      return [
        text,
        vsGraphile === null ? null : vsGraphile >= 1.5 && (half === null || (us ?? 0) >= half),
      ];
    },
  },
  {
    key: 'w2.cold',
    label: 'W2 the same, the first drain of a freshly started node (jobs/s)',
    better: 'higher',
  },
  { key: 'w2.rss', label: 'W2 peak RSS of the node (MB)', better: 'lower' },
  {
    key: 'w2.cpu.node',
    label: 'W2 CPU per 1,000 jobs: the node process, all threads (ms)',
    better: 'lower',
  },
  {
    key: 'w2.cpu.server',
    label: 'W2 CPU per 1,000 jobs: its PostgreSQL backends (ms)',
    better: 'lower',
  },
  {
    key: 'w2.busy',
    label: 'W2 machine CPU busy during the drain (% of all cores)',
    better: 'neither',
  },
  {
    key: 'w3.p50',
    label: 'W3 insert → perform start p50 (ms)',
    better: 'lower',
    target: (f) => ['≤ 3 ms', f.values[US] == null ? null : f.values[US] <= 3],
  },
  { key: 'w3.p95', label: 'W3 p95 (ms)', better: 'lower' },
  {
    key: 'w3.p99',
    label: 'W3 p99 (ms)',
    better: 'lower',
    target: (f) => {
      const us = f.values[US];
      const g = f.values['graphile-worker'];
      return ['≤ graphile', us == null || g == null ? null : us <= g];
    },
  },
  { key: 'w3.max', label: 'W3 max (ms)', better: 'lower' },
  { key: 'w3.rss', label: 'W3 peak RSS (MB)', better: 'lower' },
  { key: 'w4.rate', label: 'W4 CPU-bound, SHA-256 of 1 MB per job (jobs/s)', better: 'higher' },
  {
    key: 'w4.elp99',
    label: 'W4 main-thread event-loop delay p99 (ms)',
    better: 'lower',
    target: (f) => ['< 10 ms', f.values[US] == null ? null : f.values[US] < 10],
  },
  { key: 'w4.elmax', label: 'W4 event-loop delay max (ms)', better: 'lower' },
  { key: 'w4.rss', label: 'W4 peak RSS (MB)', better: 'lower' },
  { key: 'w5.1', label: 'W5 drain, 1 node (jobs/s)', better: 'higher' },
  { key: 'w5.2', label: 'W5 drain, 2 nodes (jobs/s)', better: 'higher' },
  {
    key: 'w5.3',
    label: 'W5 drain, 3 nodes (jobs/s)',
    better: 'higher',
    target: (f, m, limits) => {
      const one = m[US]?.['w5.1'];
      const three = f.values[US];
      if (one == null || three == null) return ['≥ 2.5× 1 node, or PostgreSQL the limit', null];
      const scale = three / one;
      const share = limits ? three / limits.batched.jobsPerSecond : null;
      const busy = m[US]?.['w5.3.busy'];
      return [
        `≥ 2.5× 1 node (${scale.toFixed(2)}×), or PostgreSQL the limit (${share === null ? '?' : (share * 100).toFixed(0) + '% of pgbench 100/stmt'}${busy == null ? '' : `; machine CPU ${busy.toFixed(0)}% busy`})`,
        scale >= 2.5 || (share !== null && share >= 0.5),
      ];
    },
  },
  {
    key: 'w5.3.busy',
    label: 'W5 3 nodes: machine CPU busy during the drain (% of all cores)',
    better: 'neither',
  },
  { key: 'w5.rss', label: 'W5 peak RSS per node (MB)', better: 'lower' },
];

export function buildFigures(medians: Medians, limits: Limits): Figure[] {
  const figures: Figure[] = [];
  for (const row of ROWS) {
    const values: Record<string, number | null> = {};
    for (const system of [US, ...PEERS]) values[system] = medians[system]?.[row.key] ?? null;
    if (Object.values(values).every((v) => v === null)) continue;
    const peers = PEERS.map((p) => values[p]).filter(
      (v): v is number => v !== null && Number.isFinite(v),
    );
    const best =
      peers.length === 0 || row.better === 'neither'
        ? null
        : row.better === 'higher'
          ? Math.max(...peers)
          : Math.min(...peers);
    const us = values[US];
    const ratio = us != null && best !== null && best !== 0 ? us / best : null;
    const base = { key: row.key, label: row.label, better: row.better, values, ratio };
    const [target, met] = row.target ? row.target(base, medians, limits) : [null, null];
    figures.push({ ...base, target, met });
  }
  return figures;
}

function format(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

export function renderTable(figures: Figure[], systems: string[], limits: Limits): string {
  const columns = [US, ...PEERS].filter((s) => systems.includes(s));
  const header = ['figure', ...columns, 'quern ÷ best peer', 'target'];
  const lines = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const f of figures) {
    const ratio = f.ratio === null ? '—' : `${f.ratio.toFixed(2)}× (${f.better} is better)`;
    const target =
      f.target === null ? '' : `${f.met === null ? '' : f.met ? '✓ ' : '✗ '}${f.target}`;
    lines.push(
      `| ${[f.label, ...columns.map((c) => format(f.values[c])), ratio, target].join(' | ')} |`,
    );
  }
  if (limits) {
    const limitRow = (l: Limit, what: string): string =>
      `| machine limit (pgbench): claim + finish, ${what}, ${l.clients} clients (jobs/s) | ${l.ranDry ? '≥ ' : ''}${format(l.jobsPerSecond)} |${' |'.repeat(columns.length + 1)}`;
    lines.push(limitRow(limits.single, '1 job per statement'));
    lines.push(limitRow(limits.batched, '100 jobs per statement'));
  }
  return lines.join('\n');
}

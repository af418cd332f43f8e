// A small reader of Prometheus' text exposition format (0.0.4) for tests: every sample with its labels,
// and each family's TYPE. Strict: a line it does not understand fails the test, so a malformed scrape
// cannot pass by accident.
import http from "node:http";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  types: Map<string, string>;
  /** Samples of `name` whose labels include every pair of `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
  /** The value of the one sample of `name` with `labels`; throws when there is none or several. */
  value(name: string, labels?: Record<string, string>): number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const [i, line] of text.split("\n").entries()) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (type) types.set(type[1], type[2]);
      else if (!/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) throw new Error(`line ${i + 1}: not a HELP or TYPE comment: ${line}`);
      continue;
    }
    samples.push(parseSample(line, i + 1));
  }
  const matches = (s: Sample, labels: Record<string, string>) => Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  const find = (name: string, labels: Record<string, string> = {}) => samples.filter((s) => s.name === name && matches(s, labels));
  return {
    samples,
    types,
    find,
    value(name, labels = {}) {
      const found = find(name, labels);
      if (found.length !== 1) throw new Error(`${name}${JSON.stringify(labels)}: ${found.length} samples, expected one`);
      return found[0].value;
    },
  };
}

/**
 * A sample's value as Prometheus reads it (Go's ParseFloat): NaN and Inf in any case, since prom-client
 * writes NaN as "Nan" (its event-loop-lag gauges before their first sample).
 */
function parseValue(text: string): number | undefined {
  if (/^nan$/i.test(text)) return NaN;
  const inf = /^([+-]?)inf(inity)?$/i.exec(text);
  if (inf) return inf[1] === "-" ? -Infinity : Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  return Number(text);
}

function parseSample(line: string, at: number): Sample {
  const name = NAME.exec(line)?.[0];
  if (!name) throw new Error(`line ${at}: no metric name: ${line}`);
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith("{")) {
    rest = rest.slice(1);
    while (!rest.startsWith("}")) {
      const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,?)/.exec(rest);
      if (!m) throw new Error(`line ${at}: bad label at "${rest}"`);
      labels[m[1]] = m[2].replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
      rest = rest.slice(m[0].length);
      if (!m[3] && !rest.startsWith("}")) throw new Error(`line ${at}: expected , or } at "${rest}"`);
    }
    rest = rest.slice(1);
  }
  const v = /^ (\S+)( -?\d+)?$/.exec(rest);
  if (!v) throw new Error(`line ${at}: no value: ${line}`);
  const value = parseValue(v[1]);
  if (value === undefined) throw new Error(`line ${at}: bad value ${v[1]}: ${line}`);
  return { name, labels, value };
}

/** One HTTP request; resolves with status, headers and body. */
export function httpGet(url: string, method = "GET"): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Scrapes `address`'s /metrics (must answer 200) and parses it. */
export async function scrape(address: string): Promise<Exposition> {
  const res = await httpGet(`http://${address}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${res.body}`);
  return parseExposition(res.body);
}

// Reading processes through /proc (Linux only): CPU time, resident memory, children, and
// the open-file limit. Only the pids handed in are measured, so the load generators' own
// CPU never reaches the server's figures.

import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

/** Clock ticks per second, the unit of utime/stime in /proc/<pid>/stat. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * The fields of /proc/<pid>/stat after the command name (which may hold spaces and
 * parentheses, so the split starts after the last ')'). Index 0 is field 3 (state).
 */
function statFields(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, "utf8");
  const close = text.lastIndexOf(")");
  return {
    comm: text.slice(text.indexOf("(") + 1, close),
    rest: text.slice(close + 2).split(" "),
  };
}

/** User + system CPU seconds the process has used so far (all its threads), or null. */
export function cpuSeconds(pid) {
  try {
    const { rest } = statFields(pid);
    // Fields 14 (utime) and 15 (stime) are rest[11] and rest[12].
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** Resident set size in bytes (VmRSS), or null once the process is gone. */
export function rssBytes(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** True while /proc knows the pid and it is not a zombie. */
export function alive(pid) {
  try {
    return statFields(pid).rest[0] !== "Z";
  } catch {
    return false;
  }
}

/** Direct children of `pid` as { pid, comm }, found by scanning /proc for that parent. */
export function childrenOf(pid) {
  const found = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const { comm, rest } = statFields(name);
      // Field 4 (ppid) is rest[1].
      if (Number(rest[1]) === pid) found.push({ pid: Number(name), comm });
    } catch {
      // Gone between readdir and read.
    }
  }
  return found;
}

/** This process's open-file limit, { soft, hard } (Infinity for "unlimited"). */
export function openFileLimit() {
  const limits = readFileSync("/proc/self/limits", "utf8");
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  const num = (v) => (v === "unlimited" ? Infinity : Number(v));
  return m ? { soft: num(m[1]), hard: num(m[2]) } : { soft: Infinity, hard: Infinity };
}

/** A sampler of CPU and RSS for named pids: `mark()` readings, `sample()` timelines. */
export class ProcWatch {
  /** @param {Record<string, number>} pids name -> pid, e.g. { server: 123, db: 456 } */
  constructor(pids) {
    this.pids = pids;
    this.samples = [];
    this.timer = null;
  }

  /** Current CPU seconds per name. */
  cpu() {
    return Object.fromEntries(Object.entries(this.pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  }

  /** Current RSS bytes per name. */
  rss() {
    return Object.fromEntries(Object.entries(this.pids).map(([k, pid]) => [k, rssBytes(pid)]));
  }

  /** Starts sampling RSS every `everyMs`, timestamps relative to now. */
  startSampling(everyMs) {
    const t0 = Date.now();
    this.samples = [];
    const take = () => this.samples.push({ tMs: Date.now() - t0, rss: this.rss(), cpu: this.cpu() });
    take();
    this.timer = setInterval(take, everyMs);
    this.timer.unref();
  }

  /** Stops sampling; returns the samples and the largest RSS seen per name. */
  stopSampling() {
    clearInterval(this.timer);
    this.timer = null;
    const maxRss = {};
    for (const s of this.samples) {
      for (const [k, v] of Object.entries(s.rss)) {
        if (v != null) maxRss[k] = Math.max(maxRss[k] ?? 0, v);
      }
    }
    return { samples: this.samples, maxRss };
  }
}

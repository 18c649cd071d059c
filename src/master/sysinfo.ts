import { readFile } from 'node:fs/promises';
import { arch, cpus, platform } from 'node:os';

/** Host figures of `/info`, read from /proc on Linux (NodePass's sources and rules); -1/0 elsewhere. */
export interface HostFigures {
  cpu: number;
  mem_total: number;
  mem_used: number;
  swap_total: number;
  swap_used: number;
  netrx: number;
  nettx: number;
  diskr: number;
  diskw: number;
  sysup: number;
}

export interface CpuSample {
  idle: number;
  total: number;
}

/** The aggregate `cpu` line of /proc/stat: idle = idle + iowait, total = every field. */
export function parseProcStat(text: string): CpuSample | undefined {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (!line) return undefined;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isFinite(n))) return undefined;
  const total = f.reduce((a, b) => a + b, 0);
  return { idle: (f[3] ?? 0) + (f[4] ?? 0), total };
}

/** CPU use in % between two samples (integer, 0..100). */
export function cpuPercent(a: CpuSample, b: CpuSample): number {
  const total = b.total - a.total;
  if (total <= 0) return 0;
  return Math.max(0, Math.min(100, Math.round((100 * (total - (b.idle - a.idle))) / total)));
}

/** /proc/meminfo: used = total − available; swap used = total − free. Bytes. */
export function parseMeminfo(text: string): Pick<HostFigures, 'mem_total' | 'mem_used' | 'swap_total' | 'swap_used'> {
  const kb = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable') || kb('MemFree');
  const swapTotal = kb('SwapTotal');
  return {
    mem_total: total,
    mem_used: Math.max(0, total - available),
    swap_total: swapTotal,
    swap_used: Math.max(0, swapTotal - kb('SwapFree')),
  };
}

const VIRTUAL_IF = /^(lo|veth|docker|br-|virbr)/;

/** /proc/net/dev: bytes received/sent summed over physical-looking interfaces. */
export function parseNetDev(text: string): { netrx: number; nettx: number } {
  let netrx = 0;
  let nettx = 0;
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (VIRTUAL_IF.test(name)) continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    netrx += f[0] ?? 0;
    nettx += f[8] ?? 0;
  }
  return { netrx, nettx };
}

/** /proc/diskstats: sectors read/written × 512 over whole disks (no loop, ram, dm-, md or partitions). */
export function parseDiskstats(text: string): { diskr: number; diskw: number } {
  let diskr = 0;
  let diskw = 0;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const name = f[2] as string;
    if (/^(loop|ram|dm-|md|zram|sr|fd)/.test(name)) continue;
    // Partitions: sda1, vda2, xvda1, nvme0n1p1, mmcblk0p1.
    if (/^(sd|vd|xvd|hd)[a-z]+\d+$/.test(name) || /^(nvme\d+n\d+|mmcblk\d+)p\d+$/.test(name)) continue;
    diskr += Number(f[5]) * 512;
    diskw += Number(f[9]) * 512;
  }
  return { diskr, diskw };
}

async function read(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Samples host figures; CPU use compares against the previous call (or a sample 100 ms earlier the first time). */
export class SystemInfo {
  private last: CpuSample | undefined;
  readonly linux = platform() === 'linux';
  readonly os = platform();
  /** Go's GOARCH names, which dashboards show. */
  readonly arch =
    ({ x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm' } as Record<string, string>)[arch()] ?? arch();
  readonly cpus = Math.max(1, cpus().length);

  async figures(): Promise<HostFigures> {
    if (!this.linux) {
      return {
        cpu: -1,
        mem_total: 0,
        mem_used: 0,
        swap_total: 0,
        swap_used: 0,
        netrx: 0,
        nettx: 0,
        diskr: 0,
        diskw: 0,
        sysup: 0,
      };
    }
    let cpu = -1;
    let now = parseProcStat((await read('/proc/stat')) ?? '');
    if (now && !this.last) {
      await new Promise((r) => setTimeout(r, 100));
      this.last = now;
      now = parseProcStat((await read('/proc/stat')) ?? '');
    }
    if (now && this.last) {
      cpu = cpuPercent(this.last, now);
      this.last = now;
    }
    const [mem, net, disk, up] = await Promise.all([
      read('/proc/meminfo'),
      read('/proc/net/dev'),
      read('/proc/diskstats'),
      read('/proc/uptime'),
    ]);
    return {
      cpu,
      ...parseMeminfo(mem ?? ''),
      ...parseNetDev(net ?? ''),
      ...parseDiskstats(disk ?? ''),
      sysup: Math.floor(Number((up ?? '0').split(' ')[0]) || 0),
    };
  }
}

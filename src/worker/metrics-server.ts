import { createServer, type Server } from 'node:http';
import type { Metrics } from '../metrics.js';

/**
 * The HTTP endpoint of a worker-only process (`plugforge worker` with
 * PLUGFORGE_WORKER_METRICS_PORT): `GET /metrics` in Prometheus' text format, `GET /healthz`
 * for liveness; anything else 404. It carries counts only, no build or tenant data, so it
 * has no authentication, like the API's /metrics. Resolves once listening.
 */
export async function startMetricsServer(metrics: Metrics, port: number, host: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const route = `${req.method} ${(req.url ?? '').split('?')[0]}`;
    if (route === 'GET /metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
      );
      return;
    }
    if (route === 'GET /healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"status":"ok"}\n');
      return;
    }
    res
      .writeHead(404, { 'Content-Type': 'application/json' })
      .end('{"error":{"code":"not_found","message":"A worker serves only GET /metrics and GET /healthz."}}\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return { server, port: typeof address === 'object' && address ? address.port : port };
}

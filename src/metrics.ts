import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one process (prom-client), served at /metrics by the API. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'plugforge_' });
  return { registry, ...apiMetrics(registry), ...buildMetrics(registry), ...targetTimeMetrics(registry) };
}

/** What the API counts: requests, submissions, uploads. */
function apiMetrics(registry: Registry) {
  return {
    httpRequests: new Counter({
      name: 'plugforge_http_requests_total',
      help: 'HTTP requests by route and status.',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    buildsSubmitted: new Counter({ name: 'plugforge_builds_submitted_total', help: 'Builds accepted.', registers: [registry] }),
    uploadsRejected: new Counter({
      name: 'plugforge_uploads_rejected_total',
      help: 'Uploads refused, by error code.',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    uploadBytes: new Counter({
      name: 'plugforge_upload_bytes_total',
      help: 'Compressed bytes received in uploads.',
      registers: [registry],
    }),
  };
}

/** What the workers and the retention sweeps count. */
function buildMetrics(registry: Registry) {
  return {
    targetsFinished: new Counter({
      name: 'plugforge_targets_finished_total',
      help: 'Target builds finished, by status and target.',
      labelNames: ['status', 'target'] as const,
      registers: [registry],
    }),
    modules: new Counter({
      name: 'plugforge_modules_total',
      help: 'Modules of dependency phases, by where they came from (downloaded or cache).',
      labelNames: ['source'] as const,
      registers: [registry],
    }),
    retentionRemoved: new Counter({
      name: 'plugforge_retention_removed_total',
      help: 'What retention sweeps removed: finished builds, blobs no build refers to, abandoned temp files.',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    retentionBytes: new Counter({
      name: 'plugforge_retention_freed_bytes_total',
      help: 'Bytes of blobs removed by retention sweeps.',
      registers: [registry],
    }),
  };
}

/** Where a target build's time goes. */
function targetTimeMetrics(registry: Registry) {
  return {
    targetDuration: new Histogram({
      name: 'plugforge_target_duration_seconds',
      help: 'Wall time of a target build, container creation to artifact stored.',
      labelNames: ['target'] as const,
      buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers: [registry],
    }),
    targetPhase: new Histogram({
      name: 'plugforge_target_phase_seconds',
      help: 'Time of one phase of a target build (queueWait, prepare, create, sourceIn, compile, artifactOut, loadCheck, teardown), as the build document lists them.',
      labelNames: ['phase'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

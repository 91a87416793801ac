// Control-API metrics: latency and count by method, route pattern and status. The route is the
// pattern a request matched (`/v1/services/:id`), never the raw path, so ids and names in URLs do not
// become label values; requests that match no route are not observed here at all.
import { Histogram, type Registry } from 'prom-client';
import { FAST_BUCKETS } from './registry.ts';

export class ApiMetrics {
  private readonly requests: Histogram<'method' | 'route' | 'status'>;

  constructor(reg: Registry) {
    this.requests = new Histogram({
      name: 'shoal_api_request_duration_seconds',
      help: 'Control-API requests by method, route pattern and status code: handler start to response.',
      labelNames: ['method', 'route', 'status'],
      buckets: FAST_BUCKETS,
      registers: [reg],
    });
  }

  request(method: string, route: string, status: number, seconds: number): void {
    this.requests.observe({ method, route, status: String(status) }, seconds);
  }
}

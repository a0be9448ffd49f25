// rcc-pipeline: one EnhancedPipelineScheduler over one OpenAICompatibleProvider per endpoint,
// round-robin, retries and circuit breakers on, maxConcurrentRequests = the scenario's concurrency.
import { createRequire } from 'node:module'

const { EnhancedPipelineScheduler, OpenAICompatibleProvider } = createRequire(import.meta.url)('../../../index.js')

export async function create({ urls, concurrency, model, timeoutMs }) {
  const scheduler = new EnhancedPipelineScheduler({
    maxConcurrentRequests: concurrency,
    requestTimeout: timeoutMs,
    loadBalancingStrategy: 'round-robin',
    circuitBreaker: { enabled: true, failureThreshold: 5, recoveryTimeout: 60_000 },
    retry: { maxRetries: 2, baseDelay: 500, maxDelay: 8000 },
    maxQueueSize: 10_000_000,
  })
  for (const [i, endpoint] of urls.entries()) {
    await scheduler.registerProvider(new OpenAICompatibleProvider({ name: `mock-${i}`, endpoint, apiKey: 'sk-bench' }))
  }
  const messages = [{ role: 'user', content: 'ping' }]
  return {
    chat: (id) => scheduler.scheduleRequest(`r${id}`, { model, messages }, 'medium'),
    async stream(id, onChunk) {
      for await (const chunk of scheduler.scheduleStreamRequest(`s${id}`, { model, messages, stream: true }, 'medium')) onChunk(chunk)
    },
    close: () => scheduler.destroy(),
  }
}

// The idiomatic Node stack: openai-node clients (one per endpoint, own retries off), p-queue for
// concurrency and priority, cockatiel for retry with exponential backoff and one circuit breaker
// per endpoint, round-robin over the endpoints whose breaker is not open.
import OpenAI from 'openai'
import PQueue from 'p-queue'
import { retry, circuitBreaker, handleAll, ExponentialBackoff, ConsecutiveBreaker, CircuitState } from 'cockatiel'

export async function create({ urls, concurrency, model, timeoutMs }) {
  const endpoints = urls.map((baseURL) => ({
    client: new OpenAI({ baseURL, apiKey: 'sk-bench', maxRetries: 0, timeout: timeoutMs }),
    breaker: circuitBreaker(handleAll, { halfOpenAfter: 60_000, breaker: new ConsecutiveBreaker(5) }),
  }))
  const retryPolicy = retry(handleAll, { maxAttempts: 2, backoff: new ExponentialBackoff({ initialDelay: 500, maxDelay: 8000 }) })
  const queue = new PQueue({ concurrency })
  let next = 0
  const pick = () => {
    for (let n = 0; n < endpoints.length; n++) {
      const ep = endpoints[next++ % endpoints.length]
      if (ep.breaker.state !== CircuitState.Open) return ep
    }
    return endpoints[next++ % endpoints.length] // every breaker open: its BrokenCircuitError is the answer
  }
  // Retry around "pick an endpoint, call it through its breaker": a retry goes to the next endpoint.
  const call = (body) => retryPolicy.execute(() => {
    const { client, breaker } = pick()
    return breaker.execute(() => client.chat.completions.create(body))
  })
  const messages = [{ role: 'user', content: 'ping' }]
  return {
    chat: () => queue.add(() => call({ model, messages }), { priority: 0 }),
    stream: (id, onChunk) =>
      queue.add(async () => {
        // Retried until the stream is open (the response head), as rcc-pipeline does until the first chunk.
        const stream = await call({ model, messages, stream: true })
        for await (const chunk of stream) onChunk(chunk)
      }, { priority: 0 }),
    close: async () => queue.clear(),
  }
}

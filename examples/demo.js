#!/usr/bin/env node
// `npm run demo`: the main job on the embedded mock upstream. No keys, no network.
// A chat, a streamed chat (tokens printed as they arrive), a typed error, then the scheduler:
// weighted balancing over three providers (one failing), a breaker opening and recovering,
// a scheduled stream, and the final metrics and health.
'use strict'

const { OpenAICompatibleProvider, RateLimitError, BaseProvider, EnhancedPipelineScheduler, PipelineTracker, buildRoutingTable, PipelineManager, PipelineDebugSystem } = require('..')
const { MockUpstream } = require('../mock')

async function main() {
  const mock = await MockUpstream.start({ apiKeys: ['sk-demo'] })
  console.log(`mock upstream listening on ${mock.openaiBase}\n`)

  const provider = new OpenAICompatibleProvider({ name: 'demo', endpoint: mock.openaiBase, apiKey: 'sk-demo', defaultModel: 'qwen-turbo' })

  console.log('1. chat')
  const response = await provider.chat({ messages: [{ role: 'user', content: 'Hello, how are you?' }], temperature: 0.7, maxTokens: 1000 })
  console.log(`   ${response.model} answered: ${response.choices[0].message.content}`)
  console.log(`   usage: ${JSON.stringify(response.usage)}\n`)

  console.log('2. streamed chat (the mock paces its chunks 60 ms apart)')
  const paced = new OpenAICompatibleProvider({
    name: 'demo-stream', endpoint: mock.openaiBase, apiKey: 'sk-demo', defaultModel: 'qwen-turbo',
    headers: { 'x-mock-scenario': 'chunk-delay=60,reply=Once_upon_a_time_a_small_Rust_crate_carried_tokens_to_JavaScript_one_chunk_at_a_time.' },
  })
  process.stdout.write('   ')
  let chunks = 0
  for await (const chunk of paced.streamChat({ messages: [{ role: 'user', content: 'Tell me a story' }], stream_options: { include_usage: true } })) {
    chunks++
    const choice = chunk.choices[0]
    if (choice && choice.delta.content) process.stdout.write(choice.delta.content)
    if (choice && choice.finish_reason) process.stdout.write(`\n   [finish_reason: ${choice.finish_reason}]`)
    if (chunk.usage) process.stdout.write(`\n   [usage: ${chunk.usage.total_tokens} tokens]`)
  }
  console.log(`\n   ${chunks} chunks\n`)

  console.log('3. a typed error (the mock answers 429 with Retry-After: 2)')
  try {
    await provider.chat({ model: 'mock:status=429,retry-after=2', messages: [{ role: 'user', content: 'again' }] })
  } catch (err) {
    if (!(err instanceof RateLimitError)) throw err
    console.log(`   ${err.name} (${err.code}): ${err.message}; retry in ${err.retryAfterMs} ms\n`)
  }

  await schedulerDemo(mock)
  await routingDemo(mock)

  const stats = mock.stats()
  console.log(`mock saw ${stats.requests} requests over ${stats.connectionsOpened} connection(s)`)
  await mock.close()
}

/** A provider written in JS that fails its first `failures` calls with a 503, then recovers. */
class FlakyProvider extends BaseProvider {
  constructor(failures) {
    super({ name: 'flaky', defaultModel: 'qwen-turbo' })
    this.remaining = failures
  }
  async executeChat(request) {
    if (this.remaining-- > 0) throw Object.assign(new Error('flaky upstream: 503 Service Unavailable'), { status: 503 })
    return { model: request.model, choices: [{ index: 0, message: { role: 'assistant', content: 'flaky is back' }, finish_reason: 'stop' }] }
  }
}

async function schedulerDemo(mock) {
  const upstream = (name, reply) =>
    new OpenAICompatibleProvider({ name, endpoint: mock.openaiBase, apiKey: 'sk-demo', defaultModel: 'qwen-turbo', headers: { 'x-mock-scenario': `reply=${reply}` } })
  const scheduler = new EnhancedPipelineScheduler({
    maxConcurrentRequests: 4,
    loadBalancingStrategy: 'weighted',
    circuitBreaker: { failureThreshold: 2, recoveryTimeout: 400 },
    retry: { maxRetries: 2, baseDelay: 20 },
  })
  await scheduler.registerProvider(upstream('primary', 'primary'), { weight: 3 })
  await scheduler.registerProvider(upstream('secondary', 'secondary'), { weight: 1 })
  const flaky = new FlakyProvider(2)
  await scheduler.registerProvider(flaky, { weight: 1 })
  for (const e of ['circuitOpen', 'circuitHalfOpen', 'circuitClose']) {
    scheduler.on(e, (p) => console.log(`   [event] ${e} ${p.pipelineId}${p.retryAfterMs ? ` for ${p.retryAfterMs} ms` : ''}`))
  }
  let retries = 0
  scheduler.on('retry', () => retries++)

  console.log('4. the scheduler: weights primary 3 : secondary 1 : flaky 1; flaky fails its first 2 calls')
  const ask = (id) => scheduler.scheduleRequest(id, { messages: [{ role: 'user', content: 'hi' }] }, 'medium', 10000)
  const served = {}
  for (let i = 0; i < 20; i++) {
    const r = await ask(`round1-${i}`)
    served[r.choices[0].message.content] = (served[r.choices[0].message.content] || 0) + 1
  }
  console.log(`   20 requests, all answered: ${JSON.stringify(served)} (${retries} retried on another provider)`)
  console.log('   waiting for flaky\'s breaker to half-open...')
  await new Promise((r) => setTimeout(r, 450))
  const again = {}
  for (let i = 0; i < 10; i++) {
    const r = await ask(`round2-${i}`)
    again[r.choices[0].message.content] = (again[r.choices[0].message.content] || 0) + 1
  }
  console.log(`   10 more: ${JSON.stringify(again)}\n`)

  console.log('5. a scheduled stream')
  process.stdout.write('   ')
  for await (const chunk of scheduler.scheduleStreamRequest('stream-1', { messages: [{ role: 'user', content: 'stream please' }] }, 'high')) {
    const text = chunk.choices[0] && chunk.choices[0].delta.content
    if (text) process.stdout.write(text)
  }
  console.log('\n')

  console.log('6. metrics and health')
  const m = scheduler.getMetrics()
  console.log(`   total ${m.totalRequests}, ok ${m.successfulRequests}, failed ${m.failedRequests}, p50 ${m.p50ResponseTime} ms, p99 ${m.p99ResponseTime} ms, breaker trips ${m.circuitBreakerTripCount}`)
  console.table(
    Object.fromEntries(
      Object.entries(m.pipelines).map(([id, p]) => [id, { weight: p.weight, requests: p.totalRequests, ok: p.successfulRequests, failed: p.failedRequests, circuit: p.circuitState, 'avg ms': p.averageResponseTime }]),
    ),
  )
  const h = scheduler.getHealth()
  console.log(`   health: ${h.status} (${h.details.healthyPipelines}/${h.details.totalPipelines} pipelines healthy)\n`)
  await scheduler.destroy()
}

/** The RCC v4 routing table: one pipeline per API key, a revoked key cooled down, stages tracked. */
async function routingDemo(mock) {
  console.log('7. a routing table: one provider, two API keys -> two pipelines')
  mock.setApiKeys(['sk-demo', 'sk-demo-2'])
  const table = buildRoutingTable({
    providers: { local: { endpoint: mock.openaiBase, apiKeys: ['sk-demo', 'sk-demo-2'] } },
    routing: { rules: [{ name: 'default', provider: 'local', model: 'llama-3.1-8b' }] },
  })
  const tracker = new PipelineTracker()
  const manager = new PipelineManager({ tracker, fallback: 'next-pipeline', circuitBreaker: { failureThreshold: 2 } })
  await manager.initializeFromRoutingTable(table)
  const listing = new PipelineDebugSystem(manager, { log: () => {} }).recordLivePipelines()
  console.log(listing.split('\n').map((l) => `   ${l}`).join('\n'))
  const ask = { model: 'default', messages: [{ role: 'user', content: 'which key?' }] }
  mock.reset()
  for (let i = 0; i < 4; i++) await manager.execute('default', ask)
  const keys = ['sk-demo', 'sk-demo-2']
  console.log(`   keys the upstream saw, in order: ${mock.requests().map((r) => `#${keys.indexOf(r.headers.authorization.slice(7))}`).join(', ')}`)
  mock.setApiKeys(['sk-demo']) // key #1 is revoked upstream
  for (let i = 0; i < 6; i++) await manager.execute('default', ask)
  console.log(`   after revoking key #1: 6/6 answered (fallback to the other key), its breaker is ${manager.circuitState('local-llama-3.1-8b-1')}`)
  const last = tracker.getCompletedRequests().at(-1)
  console.log(`   stages of the last request: ${last.getStages().map((s) => `${s.stage} ${s.duration} ms`).join(' -> ')}\n`)
  manager.destroy()
  mock.setApiKeys(['sk-demo'])
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {
  AuthenticationError,
  BaseProvider,
  buildRoutingTable,
  LoadBalancer,
  NoAvailablePipelineError,
  PipelineDebugSystem,
  PipelineError,
  PipelineManager,
  PipelineRouter,
  ValidationError,
  type RoutingConfig,
} from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { collect, textOf } from './helpers'

const KEYS = ['key-one-0001', 'key-two-0002']
let mock: MockUpstream

beforeAll(async () => {
  mock = await MockUpstream.start({ apiKeys: KEYS })
})
afterEach(() => {
  mock.setApiKeys(KEYS)
  mock.reset()
})
afterAll(async () => {
  await mock.close()
})

/** The seed's example: one provider, two keys, one rule. */
function seedConfig(extra: Partial<RoutingConfig> = {}): RoutingConfig {
  return {
    providers: { lmstudio: { apiKeys: [...KEYS], endpoint: mock.openaiBase, maxTokens: 4096 } },
    routing: { rules: [{ name: 'default', provider: 'lmstudio', model: 'llama-3.1-8b' }] },
    ...extra,
  }
}

const ask = { model: 'default', messages: [{ role: 'user' as const, content: 'hello' }] }
const keysSeen = () => mock.requests().map((r) => r.headers.authorization)

describe('routing table (RCC v4)', () => {
  it('expands one provider with two keys into two pipelines and round-robins between the keys', async () => {
    const table = buildRoutingTable(seedConfig())
    expect(table.defaultRoute).toBe('default')
    expect(table.routes.default.map((r) => [r.pipelineId, r.apiKeyIndex])).toEqual([
      ['lmstudio-llama-3.1-8b-0', 0],
      ['lmstudio-llama-3.1-8b-1', 1],
    ])
    expect(JSON.stringify(table)).not.toContain(KEYS[0])

    const manager = new PipelineManager()
    await manager.initializeFromRoutingTable(table)
    expect([...manager.getAllPipelines().keys()]).toEqual(['lmstudio-llama-3.1-8b-0', 'lmstudio-llama-3.1-8b-1'])
    for (const p of manager.getAllPipelines().values()) {
      expect(p.status).toBe('runtime')
      expect(p.getDebugInfo().layerStatus).toEqual({ llmswitch: 'ready', workflow: 'ready', compatibility: 'ready', provider: 'ready' })
    }

    // The seed's request flow: router → balancer → pipeline.
    const router = new PipelineRouter(table)
    const balancer = new LoadBalancer(manager)
    const decision = router.route('default')
    expect(decision.availablePipelines).toEqual(['lmstudio-llama-3.1-8b-0', 'lmstudio-llama-3.1-8b-1'])
    const picked = [0, 1, 2, 3].map(() => balancer.selectPipeline(decision.availablePipelines))
    expect(picked).toEqual(['lmstudio-llama-3.1-8b-0', 'lmstudio-llama-3.1-8b-1', 'lmstudio-llama-3.1-8b-0', 'lmstudio-llama-3.1-8b-1'])
    for (const id of picked.slice(0, 2)) {
      const answer = await manager.getPipeline(id)!.execute(ask)
      expect(answer.choices[0].message.content).toContain('hello')
    }
    expect(keysSeen()).toEqual([`Bearer ${KEYS[0]}`, `Bearer ${KEYS[1]}`])

    // The managed path does the same with breakers; the target model is what goes upstream.
    mock.reset()
    for (let i = 0; i < 4; i++) await manager.execute('default', ask)
    expect(keysSeen()).toEqual([KEYS[0], KEYS[1], KEYS[0], KEYS[1]].map((k) => `Bearer ${k}`))
    expect(mock.requests().every((r) => r.body.model === 'llama-3.1-8b')).toBe(true)
    manager.destroy()
  })

  it('lists live pipelines readably and validates them against the table', async () => {
    const manager = new PipelineManager()
    const table = buildRoutingTable(seedConfig())
    await manager.initializeFromRoutingTable(table)
    const lines: string[] = []
    const debug = new PipelineDebugSystem(manager, { log: (l: string) => lines.push(l) })
    const listing = debug.recordLivePipelines()
    expect(lines).toEqual([listing])
    expect(listing).toContain('Live pipelines (2)')
    expect(listing).toContain('lmstudio-llama-3.1-8b-1')
    expect(listing).toContain('default -> lmstudio / llama-3.1-8b (key #1)')
    expect(listing).not.toContain(KEYS[1])
    expect(debug.validateAgainstConfig(table)).toEqual({ expected: 2, actual: 2 })

    const bigger = buildRoutingTable({
      ...seedConfig(),
      providers: { ...seedConfig().providers, other: { apiKey: 'other-key-1', endpoint: mock.openaiBase } },
      routing: { default: [{ provider: 'lmstudio', model: 'llama-3.1-8b' }], coding: [{ provider: 'other', model: 'coder' }] },
    })
    expect(() => debug.validateAgainstConfig(bigger)).toThrow(PipelineError)
    expect(() => debug.validateAgainstConfig(bigger)).toThrow(/1 of 3 expected pipelines are not live: other-coder-0/)
    manager.destroy()
  })

  it('cools down a key that starts failing while the other keeps serving', async () => {
    const manager = new PipelineManager({ circuitBreaker: { failureThreshold: 2, recoveryTimeout: 60000 } })
    await manager.initializeFromRoutingTable(buildRoutingTable(seedConfig()))
    await manager.execute('default', ask)
    mock.setApiKeys([KEYS[0]]) // the second key is revoked upstream
    const failures: unknown[] = []
    let successes = 0
    for (let i = 0; i < 12; i++) {
      try {
        await manager.execute('default', ask)
        successes++
      } catch (e) {
        failures.push(e)
      }
    }
    // Zero fallback: the requests that hit the revoked key fail, naming its pipeline, until its breaker opens.
    expect(failures).toHaveLength(2)
    for (const e of failures) {
      expect(e).toBeInstanceOf(AuthenticationError)
      expect((e as AuthenticationError).message).toMatch(/^Pipeline lmstudio-llama-3.1-8b-1 failed: /)
      expect((e as AuthenticationError).pipelineId).toBe('lmstudio-llama-3.1-8b-1')
    }
    expect(successes).toBe(10)
    expect(manager.circuitState('lmstudio-llama-3.1-8b-1')).toBe('open')
    expect(manager.circuitState('lmstudio-llama-3.1-8b-0')).toBe('closed')
    // The seed's balancer also steers around the cooled key.
    const balancer = new LoadBalancer(manager)
    const ids = new PipelineRouter(manager.table!).route('default').availablePipelines
    expect(new Set([0, 1, 2, 3].map(() => balancer.selectPipeline(ids)))).toEqual(new Set(['lmstudio-llama-3.1-8b-0']))
    manager.destroy()
  })

  it("with fallback 'next-pipeline' a failing key costs no request", async () => {
    const manager = new PipelineManager({ fallback: 'next-pipeline', circuitBreaker: { failureThreshold: 2 } })
    await manager.initializeFromRoutingTable(buildRoutingTable(seedConfig()))
    mock.setApiKeys([KEYS[1]])
    for (let i = 0; i < 6; i++) {
      const r = await manager.execute('default', ask)
      expect(r.choices[0].message.content).toContain('hello')
    }
    expect(manager.circuitState('lmstudio-llama-3.1-8b-0')).toBe('open')
    manager.destroy()
  })

  it('streams through a route', async () => {
    const manager = new PipelineManager()
    await manager.initializeFromRoutingTable(buildRoutingTable(seedConfig()))
    const chunks = await collect(manager.executeStreaming(undefined, { ...ask, stream: true }))
    expect(textOf(chunks)).toContain('hello')
    expect(mock.requests()[0].body).toMatchObject({ model: 'llama-3.1-8b', stream: true })
    manager.destroy()
  })

  it('builds providers of other types through providerFactory, and names the type it cannot build', async () => {
    class EchoProvider extends BaseProvider {
      async executeChat(request: { model?: string }) {
        return { id: 'e', object: 'chat.completion', created: 1, model: request.model!, choices: [{ index: 0, message: { role: 'assistant' as const, content: `echo ${request.model}` }, finish_reason: 'stop' as const }] }
      }
    }
    const config: RoutingConfig = { providers: { home: { type: 'homegrown', endpoint: 'http://127.0.0.1:9/v1', apiKeys: ['home-key-1'] } }, routing: { default: [{ provider: 'home', model: 'tiny' }] } }
    const seen: Array<[string, string | undefined]> = []
    const manager = new PipelineManager({
      providerFactory: (spec, apiKey) => {
        seen.push([spec.pipelineId, apiKey])
        return new EchoProvider({ name: spec.pipelineId })
      },
    })
    await manager.initializeFromRoutingTable(buildRoutingTable(config))
    expect(seen).toEqual([['home-tiny-0', 'home-key-1']])
    const answer = await manager.execute('default', ask)
    expect(answer.choices[0].message.content).toBe('echo tiny')
    manager.destroy()
    await expect(new PipelineManager().initializeFromRoutingTable(buildRoutingTable(config))).rejects.toThrow(/providers\.home\.type 'homegrown' has no built-in provider/)
  })

  it('builds Qwen (DashScope key) and iFlow (signed) pipelines from their types', async () => {
    const table = buildRoutingTable({
      providers: {
        dash: { type: 'qwen', endpoint: mock.dashscopeBase, apiKeys: ['dash-key-0001'] },
        flow: { type: 'iflow', endpoint: mock.iflow.baseUrl, apiKeys: [mock.iflow.getApiKey()] },
      },
      routing: { default: [{ provider: 'dash', model: 'qwen-plus' }, { provider: 'flow', model: 'qwen3-coder-plus' }] },
    })
    const manager = new PipelineManager()
    await manager.initializeFromRoutingTable(table)
    mock.setApiKeys([]) // the DashScope side accepts any key here
    await manager.execute('default', ask)
    await manager.execute('default', ask)
    const [dash, flow] = mock.requests()
    expect(dash.path).toBe('/compatible-mode/v1/chat/completions')
    expect(dash.headers['x-dashscope-authtype']).toBe('openai')
    expect(flow.path).toBe('/iflow/v1/chat/completions')
    expect(flow.headers['x-iflow-signature']).toMatch(/^[0-9a-f]{64}$/)
    expect(mock.iflow.stats().signatureFailures).toBe(0)
    manager.destroy()
  })

  it('serves Anthropic-format callers through the llmswitch layer, managed and manual, streamed and not', async () => {
    const manager = new PipelineManager({ protocol: 'anthropic' })
    await manager.initializeFromRoutingTable(buildRoutingTable(seedConfig()))
    const claudeStyle = { model: 'default', max_tokens: 64, system: 'Be brief.', messages: [{ role: 'user', content: 'hi claude' }] }
    const answer = await manager.execute('default', claudeStyle as never)
    expect(answer).toMatchObject({ type: 'message', content: [{ type: 'text', text: 'Hello from the mock upstream! You said: hi claude' }] })
    expect(mock.requests()[0].body).toMatchObject({ model: 'llama-3.1-8b', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi claude' }] })
    const pipeline = manager.getPipeline('lmstudio-llama-3.1-8b-0')!
    expect(await pipeline.execute(claudeStyle as never)).toMatchObject({ type: 'message', stop_reason: 'end_turn' })
    const events = (await collect(pipeline.executeStreaming({ ...claudeStyle, stream: true } as never))) as unknown as Array<{ type: string }>
    expect(events[0].type).toBe('message_start')
    expect(events.at(-1)!.type).toBe('message_stop')
    manager.destroy()
  })

  it('rejects bad configs naming the JSON path, and unknown routes by name', async () => {
    expect(() => buildRoutingTable({ providers: { lmstudio: { apiKeys: ['ok', 3 as never], endpoint: mock.openaiBase } }, routing: { default: [{ provider: 'lmstudio', model: 'm' }] } })).toThrow(
      /providers\.lmstudio\.apiKeys\[1\] must be a non-empty string/,
    )
    expect(() => buildRoutingTable({ providers: { lmstudio: { endpoint: mock.openaiBase } }, routing: { default: [{ provider: 'lmstudo', model: 'm' }] } })).toThrow(
      /routing\.default\[0\]\.provider names unknown provider 'lmstudo'/,
    )
    let caught: unknown
    try {
      buildRoutingTable({ providers: { p: { endpoint: 'ftp://x' } }, routing: { default: [{ provider: 'p', model: 'm' }] } })
    } catch (e) {
      caught = e
    }
    expect(caught).toBeInstanceOf(ValidationError)
    expect((caught as ValidationError).message).toMatch(/providers\.p\.endpoint/)
    const router = new PipelineRouter(buildRoutingTable(seedConfig()))
    expect(router.route(undefined).virtualModel).toBe('default')
    expect(() => router.route('nope')).toThrow(NoAvailablePipelineError)
  })

  it('loads the same config from a JSON file, with errors naming the file position or the field', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcc-routing-'))
    try {
      const good = path.join(dir, 'routing.json')
      fs.writeFileSync(good, JSON.stringify(seedConfig(), null, 2))
      const manager = await PipelineManager.fromFile(good)
      expect((await manager.execute('default', ask)).choices[0].message.content).toContain('hello')
      manager.destroy()

      const broken = path.join(dir, 'broken.json')
      fs.writeFileSync(broken, '{\n  "providers": {\n    "p": {,\n')
      await expect(PipelineManager.fromFile(broken)).rejects.toThrow(/broken\.json.*line 3/)
      const badField = path.join(dir, 'bad-field.json')
      fs.writeFileSync(badField, JSON.stringify({ providers: { p: { endpoint: mock.openaiBase } }, routing: { default: [{ provider: 'p', model: 'm', weight: -1 }] } }))
      await expect(PipelineManager.fromFile(badField)).rejects.toThrow(/routing\.default\[0\]\.weight/)
      await expect(PipelineManager.fromFile(path.join(dir, 'missing.json'))).rejects.toThrow(/missing\.json/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

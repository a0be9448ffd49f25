import { BaseProvider, PipelineBaseModule, ValidationError, type OpenAIChatRequestData, type OpenAIChatResponseData } from 'rcc-pipeline'
import { collect, textOf } from './helpers'

class EchoProvider extends BaseProvider {
  calls = 0
  constructor() {
    super({ name: 'echo', supportedModels: ['echo-1'], defaultModel: 'echo-1' })
  }
  async executeChat(request: OpenAIChatRequestData): Promise<OpenAIChatResponseData> {
    this.calls++
    const last = request.messages[request.messages.length - 1]
    return {
      id: '', object: 'chat.completion', created: Date.now(), model: '',
      choices: [{ index: 0, message: { role: 'assistant', content: `echo: ${last.content}` }, finish_reason: 'stop' }],
    }
  }
}

describe('a provider written in JS', () => {
  it('is a BaseProvider and a PipelineBaseModule', () => {
    const p = new EchoProvider()
    expect(p).toBeInstanceOf(BaseProvider)
    expect(p).toBeInstanceOf(PipelineBaseModule)
    expect(p.name).toBe('echo')
    expect(p.getInfo()).toMatchObject({ id: 'provider-echo', name: 'echo Provider', type: 'provider' })
  })

  it('chat() standardizes its answer (created in seconds, id, model)', async () => {
    const p = new EchoProvider()
    const r = await p.chat({ messages: [{ role: 'user', content: 'hi' }] })
    expect(r.choices[0].message.content).toBe('echo: hi')
    expect(r.created).toBeLessThan(Date.now() / 1000 + 5)
    expect(r.id).toMatch(/^chatcmpl-/)
    expect(r.model).toBe('echo-1')
  })

  it('can be streamed through executeChat() alone', async () => {
    const chunks = await collect(new EchoProvider().streamChat({ messages: [{ role: 'user', content: 'yo' }] }))
    expect(textOf(chunks)).toBe('echo: yo')
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('stop')
  })

  it('validates requests before calling user code', async () => {
    const p = new EchoProvider()
    await expect(p.chat({ messages: [] })).rejects.toBeInstanceOf(ValidationError)
    expect(p.calls).toBe(0)
  })

  it('rejects with the user error unchanged', async () => {
    class Failing extends BaseProvider {
      async executeChat(): Promise<OpenAIChatResponseData> {
        throw new RangeError('boom')
      }
    }
    await expect(new Failing({ name: 'f' }).chat({ model: 'm', messages: [{ role: 'user', content: 'x' }] })).rejects.toThrow(RangeError)
  })

  it('base module config updates are validated and announced', () => {
    const m = new PipelineBaseModule({ id: 'qwen-pipeline', name: 'Qwen AI Pipeline', version: '1.0.0', type: 'provider', providerName: 'qwen' })
    const seen: unknown[] = []
    m.on('configUpdated', (e) => seen.push(e))
    m.updateConfig({ maxConcurrentRequests: 3 })
    expect(m.getPipelineConfig().maxConcurrentRequests).toBe(3)
    expect(seen).toEqual([expect.objectContaining({ oldConfig: expect.objectContaining({ id: 'qwen-pipeline' }), newConfig: expect.objectContaining({ maxConcurrentRequests: 3 }) })])
    expect(() => m.updateConfig({ name: '' })).toThrow(ValidationError)
  })
})

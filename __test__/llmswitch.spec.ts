import {
  convertRequest,
  convertResponse,
  convertStream,
  EnhancedPipelineScheduler,
  OpenAICompatibleProvider,
  ResponsesStreamingWorkflow,
  responseToStream,
  StreamingControlWorkflow,
  StreamingToolCallParser,
  streamToResponse,
  ValidationError,
  type ChatCompletionChunk,
  type OpenAIChatResponseData,
} from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { API_KEY } from './helpers'

let mock: MockUpstream

beforeAll(async () => {
  mock = await MockUpstream.start()
})
afterEach(() => mock.reset())
afterAll(async () => {
  await mock.close()
})

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

describe('workflow (seed examples)', () => {
  it('StreamingControlWorkflow turns a stream:true request into a non-streaming one, keeping the original', async () => {
    const workflow = new StreamingControlWorkflow({ type: 'streaming-control', config: { streamingToNonStreaming: true, nonStreamingToStreaming: false } }, {})
    await workflow.initialize()
    const streamingRequest = { model: 'gpt-4', messages: [{ role: 'user', content: 'Hello' }], stream: true, stream_options: { include_usage: true } }
    const convertedRequest = await workflow.processIncoming(streamingRequest)
    expect(convertedRequest).toMatchObject({ model: 'gpt-4', messages: [{ role: 'user', content: 'Hello' }], stream: false, _originalStream: true })
    expect(convertedRequest.stream_options).toBeUndefined()
    // The upstream's full answer goes back to the caller as the chunk stream it asked for, usage included.
    const response: OpenAIChatResponseData = {
      id: 'chatcmpl-1', object: 'chat.completion', created: 1700000000, model: 'gpt-4',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hi there!' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 },
    }
    const out = (await workflow.processOutgoing(response, convertedRequest)) as ChatCompletionChunk[]
    expect(Array.isArray(out)).toBe(true)
    expect(out.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('Hi there!')
    expect(out.at(-1)!.usage).toEqual(response.usage)
    expect(workflow.getStatus()).toMatchObject({ type: 'streaming-control', initialized: true })
  })

  it('StreamingControlWorkflow also turns a non-streaming request into a stream when configured', async () => {
    const workflow = new StreamingControlWorkflow({ config: { streamingToNonStreaming: false, nonStreamingToStreaming: true } })
    const converted = await workflow.processIncoming({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: false })
    expect(converted.stream).toBe(true)
    const chunks = responseToStream({ id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'whole answer' }, finish_reason: 'stop' }] })
    const back = await workflow.processOutgoing(chunks, converted)
    expect(back).toMatchObject({ object: 'chat.completion', choices: [{ message: { content: 'whole answer' }, finish_reason: 'stop' }] })
  })

  it('ResponsesStreamingWorkflow rebuilds the seed example into a full Responses object', async () => {
    const responsesWorkflow = new ResponsesStreamingWorkflow({ type: 'responses-streaming-workflow', config: { enableEventProcessing: true, rebuildCompleteResponse: true } }, {})
    await responsesWorkflow.initialize()
    const rebuilt = await responsesWorkflow.processIncoming({
      _protocol: 'responses',
      _hasStreamingEvents: true,
      streamingEvents: [
        { type: 'response.output_text.delta', data: { delta: 'Hello' } },
        { type: 'response.output_text.delta', data: { delta: ' world!' } },
        { type: 'response.done', data: { usage: { total_tokens: 10 } } },
      ],
    })
    expect(rebuilt).toMatchObject({ object: 'response', status: 'completed', usage: { total_tokens: 10 } })
    const message = rebuilt.output.find((o: { type: string }) => o.type === 'message')
    expect(message.content[0]).toMatchObject({ type: 'output_text', text: 'Hello world!' })
    const untouched = { model: 'm', input: 'x' }
    expect(await responsesWorkflow.processIncoming(untouched)).toBe(untouched)
  })

  it('StreamingToolCallParser assembles arguments split anywhere and repairs the incomplete end', () => {
    const parser = new StreamingToolCallParser()
    const args = '{"city": "Hangzhou \\"West\\"", "days": [1, 2]}'
    for (let i = 0; i < args.length; i += 3) parser.addChunk(0, args.slice(i, i + 3), i === 0 ? 'call_1' : '', i === 0 ? 'weather' : undefined)
    parser.addChunk(1, '{"q": "unfinished', 'call_2', 'search')
    const calls = parser.getCompletedToolCalls()
    expect(calls.find((c) => c.index === 0)).toMatchObject({ id: 'call_1', name: 'weather', args: { city: 'Hangzhou "West"', days: [1, 2] } })
    expect(calls.find((c) => c.index === 1)).toMatchObject({ id: 'call_2', name: 'search', args: { q: 'unfinished' } })
    parser.reset()
    expect(parser.getCompletedToolCalls()).toEqual([])
  })

  it('streamToResponse merges finish_reason and usage that arrive in separate chunks', () => {
    const base = { id: 'c1', object: 'chat.completion.chunk' as const, created: 1, model: 'm' }
    const response = streamToResponse([
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: 'Hi' }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'f', arguments: '{"a":' } }] }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: '', function: { arguments: ' 1}' } }] }, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] },
      { ...base, choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } },
    ])
    expect(response.choices[0]).toMatchObject({ finish_reason: 'tool_calls', message: { content: 'Hi', tool_calls: [{ id: 'call_a', function: { name: 'f', arguments: '{"a": 1}' } }] } })
    expect(response.usage).toEqual({ prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 })
  })
})

describe('LLMSwitch', () => {
  const anthropicRequest = {
    model: 'claude-sonnet',
    max_tokens: 256,
    system: 'Be brief.',
    messages: [{ role: 'user', content: [{ type: 'text', text: 'What is the weather?' }] }],
    tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
  }

  it('converts requests and responses between the four protocols, losslessly back to chat', () => {
    const chat = convertRequest(anthropicRequest, 'anthropic', 'openai-chat')
    expect(chat.messages[0]).toEqual({ role: 'system', content: 'Be brief.' })
    expect(chat.tools[0].function.name).toBe('get_weather')
    for (const p of ['anthropic', 'gemini', 'openai-responses'] as const) {
      const there = convertRequest(chat, 'openai-chat', p)
      const back = convertRequest(there, p, 'openai-chat')
      expect(back.messages).toEqual(chat.messages)
      expect(back.tools).toEqual(chat.tools)
    }
    const chatResponse = { id: 'chatcmpl-9', object: 'chat.completion', created: 1700000000, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'Sunny.' }, finish_reason: 'stop' }], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 } }
    expect(convertResponse(chatResponse, 'openai-chat', 'anthropic')).toMatchObject({ type: 'message', role: 'assistant', content: [{ type: 'text', text: 'Sunny.' }], stop_reason: 'end_turn', usage: { input_tokens: 5, output_tokens: 2 } })
    expect(convertResponse(chatResponse, 'openai-chat', 'gemini')).toMatchObject({ candidates: [{ content: { role: 'model', parts: [{ text: 'Sunny.' }] }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 2 } })
    expect(() => convertRequest({ messages: 'nope' }, 'anthropic', 'openai-chat')).toThrow(ValidationError)
    expect(() => convertRequest({}, 'klingon' as never, 'openai-chat')).toThrow(/protocol|from must be one of/)
  })

  it('converts a stream event by event', async () => {
    const chunks = responseToStream({ id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'one two three' }, finish_reason: 'stop' }] })
    const events = await all(convertStream(chunks, 'openai-chat', 'anthropic'))
    expect(events[0].type).toBe('message_start')
    expect(events.at(-1)!.type).toBe('message_stop')
    const back = await all(convertStream(events, 'anthropic', 'openai-chat'))
    expect(streamToResponse(back as ChatCompletionChunk[]).choices[0].message.content).toBe('one two three')
  })

  for (const protocol of ['anthropic', 'gemini'] as const) {
    it(`schedules a ${protocol}-format request to the OpenAI mock and answers in ${protocol} format, streamed and not`, async () => {
      const scheduler = new EnhancedPipelineScheduler({ protocol })
      await scheduler.registerProvider(new OpenAICompatibleProvider({ name: 'mock', endpoint: mock.openaiBase, apiKey: API_KEY }))
      const request =
        protocol === 'anthropic'
          ? { model: 'gpt-4o-mini', max_tokens: 100, messages: [{ role: 'user', content: 'hello there' }] }
          : { model: 'gpt-4o-mini', contents: [{ role: 'user', parts: [{ text: 'hello there' }] }] }
      const answer = await scheduler.scheduleRequest('r1', request as never)
      const sent = mock.requests().at(-1)!.body
      expect(sent.messages).toEqual([{ role: 'user', content: 'hello there' }])
      if (protocol === 'anthropic') {
        expect(answer).toMatchObject({ type: 'message', role: 'assistant', content: [{ type: 'text', text: 'Hello from the mock upstream! You said: hello there' }], stop_reason: 'end_turn' })
      } else {
        expect(answer).toMatchObject({ candidates: [{ content: { role: 'model', parts: [{ text: 'Hello from the mock upstream! You said: hello there' }] }, finishReason: 'STOP' }] })
      }
      const events = await all(scheduler.scheduleStreamRequest('r2', { ...request, stream: true } as never) as AsyncIterable<Record<string, any>>)
      if (protocol === 'anthropic') {
        expect(events[0].type).toBe('message_start')
        expect(events.at(-1)!.type).toBe('message_stop')
        const text = events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join('')
        expect(text).toBe('Hello from the mock upstream! You said: hello there')
      } else {
        const text = events.flatMap((e) => e.candidates?.[0]?.content?.parts ?? []).map((p: { text?: string }) => p.text ?? '').join('')
        expect(text).toBe('Hello from the mock upstream! You said: hello there')
        expect(events.at(-1)!.candidates[0].finishReason).toBe('STOP')
      }
      await scheduler.destroy()
    })
  }
})

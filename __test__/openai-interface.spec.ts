import {
  ChatChoice,
  ChatMessage,
  ChatTool,
  FunctionCall,
  OpenAIChatRequest,
  OpenAIChatResponse,
  ToolCall,
  UsageStats,
  ValidationError,
  type OpenAIChatRequestData,
} from 'rcc-pipeline'

/** The JSON text of `v`, parsed back: what an upstream would receive. */
function wire(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v))
}

describe('OpenAIChatRequest', () => {
  it('copies the known fields, applies the defaults and keeps unknown fields', () => {
    const data: OpenAIChatRequestData = {
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
      temperature: 0,
      max_tokens: 16,
      top_p: 1,
      n: 1,
      stop: ['\n'],
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      logit_bias: { '50256': -100 },
      user: 'u1',
      tools: [{ type: 'function', function: { name: 'f', parameters: {} } }],
      tool_choice: 'auto',
      metadata: { trace: 'abc' },
      enable_thinking: true,
    }
    const r = new OpenAIChatRequest(data)
    expect(r.model).toBe('gpt-4o-mini')
    expect(r.temperature).toBe(0)
    expect(r.stream).toBe(false)
    expect(r.metadata).toEqual({ trace: 'abc' })
    expect(r.enable_thinking).toBe(true)
    expect(wire(r)).toEqual({ ...data, stream: false })

    const bare = new OpenAIChatRequest({ model: 'm' } as OpenAIChatRequestData)
    expect(bare.messages).toEqual([])
    expect(bare.stream).toBe(false)
    expect(wire(bare)).toEqual({ model: 'm', messages: [], stream: false })
    expect(new OpenAIChatRequest({ model: 'm', messages: [], stream: true }).stream).toBe(true)
  })

  it('validate() returns true for a complete request', () => {
    expect(new OpenAIChatRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).validate()).toBe(true)
  })

  it("validate() throws ValidationError 'Model is required' naming the field", () => {
    const r = new OpenAIChatRequest({ messages: [{ role: 'user', content: 'x' }] })
    let err: unknown
    try {
      r.validate()
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ValidationError)
    expect(err).toMatchObject({ message: 'Model is required', field: 'model', code: 'VALIDATION_ERROR' })
  })

  it('validate(true) accepts a request without model (provider has a preconfigured one)', () => {
    expect(new OpenAIChatRequest({ messages: [{ role: 'user', content: 'x' }] }).validate(true)).toBe(true)
  })

  it("validate() throws ValidationError 'Messages are required' for missing or empty messages", () => {
    for (const r of [new OpenAIChatRequest({ model: 'm' } as OpenAIChatRequestData), new OpenAIChatRequest({ model: 'm', messages: [] })]) {
      let err: unknown
      try {
        r.validate()
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(ValidationError)
      expect(err).toMatchObject({ message: 'Messages are required', field: 'messages' })
    }
  })

  it('logs nothing', () => {
    const log = jest.spyOn(console, 'log').mockImplementation(() => {})
    try {
      new OpenAIChatRequest({ model: 'm', messages: [{ role: 'user', content: 'x' }] }).validate()
      expect(log).not.toHaveBeenCalled()
    } finally {
      log.mockRestore()
    }
  })
})

describe('OpenAIChatResponse', () => {
  it('defaults object, created (Unix seconds) and choices', () => {
    const before = Math.floor(Date.now() / 1000)
    const r = new OpenAIChatResponse({ id: 'chatcmpl-1', model: 'm' })
    const after = Math.floor(Date.now() / 1000)
    expect(r.object).toBe('chat.completion')
    expect(r.created).toBeGreaterThanOrEqual(before)
    expect(r.created).toBeLessThanOrEqual(after)
    expect(r.choices).toEqual([])
  })

  it('keeps the given values', () => {
    const r = new OpenAIChatResponse({ id: 'x', object: 'chat.completion', created: 1700000000, model: 'm', choices: [] })
    expect(r.created).toBe(1700000000)
  })

  it('toStandardFormat() gives the seven fields, leaving out unset ones, plus unknown fields', () => {
    const choice = { index: 0, message: { role: 'assistant' as const, content: 'hello', reasoning_content: 'thinking' }, finish_reason: 'stop' as const }
    const r = new OpenAIChatResponse({
      id: 'chatcmpl-2',
      created: 1700000001,
      model: 'm',
      choices: [choice],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
      system_fingerprint: 'fp_1',
      extend_fields: { a: 1 },
    })
    const std = r.toStandardFormat()
    expect(std).toStrictEqual({
      id: 'chatcmpl-2',
      object: 'chat.completion',
      created: 1700000001,
      model: 'm',
      choices: [choice],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
      system_fingerprint: 'fp_1',
      extend_fields: { a: 1 },
    })
    const minimal = new OpenAIChatResponse({ id: 'c', created: 5, model: 'm' }).toStandardFormat()
    expect(minimal).toStrictEqual({ id: 'c', object: 'chat.completion', created: 5, model: 'm', choices: [] })
    expect(Object.keys(minimal)).not.toContain('usage')
    expect(wire(r)).toEqual(std)
  })
})

describe('ChatMessage', () => {
  it('initialises the optional fields to null and leaves them out of the JSON', () => {
    const m = new ChatMessage('user', 'hi')
    expect(m).toMatchObject({ role: 'user', content: 'hi', name: null, function_call: null, tool_calls: null, tool_call_id: null })
    expect(wire(m)).toStrictEqual({ role: 'user', content: 'hi' })
  })

  it('statics build each role', () => {
    expect(wire(ChatMessage.user('u'))).toStrictEqual({ role: 'user', content: 'u' })
    expect(wire(ChatMessage.system('s'))).toStrictEqual({ role: 'system', content: 's' })
    expect(wire(ChatMessage.assistant('a'))).toStrictEqual({ role: 'assistant', content: 'a' })
    const tool = ChatMessage.tool('call_1', '{"ok":true}')
    expect(tool.tool_call_id).toBe('call_1')
    expect(tool.role).toBe('tool')
    expect(wire(tool)).toStrictEqual({ role: 'tool', content: '{"ok":true}', tool_call_id: 'call_1' })
  })

  it('assistant() carries tool calls (class instances serialise to OpenAI JSON)', () => {
    const call = new ToolCall('call_9', 'function', new FunctionCall('get_weather', '{"city":"Paris"}'))
    const m = ChatMessage.assistant(null, [call])
    expect(m.tool_calls).toEqual([call])
    expect(wire(m)).toStrictEqual({
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
    })
    expect(m.toJSON()).toEqual(wire(m))
  })

  it('is accepted where a ChatMessageData is expected', () => {
    const req = new OpenAIChatRequest({ model: 'm', messages: [ChatMessage.system('be brief'), ChatMessage.user('hi')] })
    expect(req.validate()).toBe(true)
    expect(wire(req)).toEqual({ model: 'm', stream: false, messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }] })
  })
})

describe('ChatChoice, ToolCall, FunctionCall, ChatTool, UsageStats', () => {
  it('ChatChoice defaults finish_reason to stop and logprobs to null', () => {
    const c = new ChatChoice(0, ChatMessage.assistant('ok'))
    expect(c.finish_reason).toBe('stop')
    expect(c.logprobs).toBeNull()
    expect(wire(c)).toStrictEqual({ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop', logprobs: null })
    expect(new ChatChoice(1, { role: 'assistant', content: '' }, 'length').finish_reason).toBe('length')
  })

  it('FunctionCall keeps JSON text and serialises an object', () => {
    expect(wire(new FunctionCall('f', '{"a":1}'))).toStrictEqual({ name: 'f', arguments: '{"a":1}' })
    expect(new FunctionCall('f', { a: 1 }).arguments).toBe('{"a":1}')
  })

  it('ToolCall and ChatTool have the OpenAI shapes', () => {
    expect(wire(new ToolCall('id1', 'function', { name: 'f', arguments: '{}' }))).toStrictEqual({ id: 'id1', type: 'function', function: { name: 'f', arguments: '{}' } })
    const fn = { name: 'lookup', description: 'Look up a word', parameters: { type: 'object', properties: { q: { type: 'string' } } } }
    const t = new ChatTool('function', fn)
    expect(t.function).toBe(fn)
    expect(wire(t)).toStrictEqual({ type: 'function', function: fn })
  })

  it('UsageStats defaults to zeros and uses snake_case fields', () => {
    expect(wire(new UsageStats())).toStrictEqual({ prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 })
    const u = new UsageStats(10, 5, 15)
    expect(u.toJSON()).toStrictEqual({ prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 })
  })

  it('a response built from the classes is valid OpenAI JSON', () => {
    const r = new OpenAIChatResponse({ id: 'c1', created: 1, model: 'm', choices: [new ChatChoice(0, ChatMessage.assistant('hi'))], usage: new UsageStats(1, 1, 2) })
    expect(wire(r)).toStrictEqual({
      id: 'c1',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    })
  })
})

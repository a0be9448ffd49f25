import { OpenAICompatibleProvider, type ChatCompletionChunk, type ProviderConfig, type OpenAIChatRequestData } from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'

export const API_KEY = 'sk-mock-secret-0123456789'

export function provider(mock: MockUpstream, extra: Partial<ProviderConfig> = {}): OpenAICompatibleProvider {
  return new OpenAICompatibleProvider({ name: 'mock', endpoint: mock.openaiBase, apiKey: API_KEY, ...extra })
}

/** A request whose model selects a mock scenario (see crates/mock/src/scenario.rs). */
export function request(scenario = '', extra: Partial<OpenAIChatRequestData> = {}): OpenAIChatRequestData {
  return { model: scenario ? `mock:${scenario}` : 'gpt-4o-mini', messages: [{ role: 'user', content: 'ping' }], ...extra }
}

export async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = []
  for await (const c of stream) out.push(c)
  return out
}

export function textOf(chunks: ChatCompletionChunk[]): string {
  return chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')
}

/** Waits until `check()` is true, for at most `ms`. */
export async function waitFor(check: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) throw new Error(`condition not met within ${ms}ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

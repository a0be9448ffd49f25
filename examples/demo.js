#!/usr/bin/env node
// `npm run demo`: the main job on the embedded mock upstream. No keys, no network.
// A chat, a streamed chat (tokens printed as they arrive) and a typed error.
'use strict'

const { OpenAICompatibleProvider, RateLimitError } = require('..')
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

  const stats = mock.stats()
  console.log(`mock saw ${stats.requests} requests over ${stats.connectionsOpened} connection(s)`)
  await mock.close()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})

'use strict'
// The routing table: `buildRoutingTable` expands a config into one pipeline per provider ×
// target model × API key (in Rust, crates/core/src/route); the API keys stay out of the table,
// kept beside it (not enumerable) for the manager to build providers with.

const fs = require('node:fs')
const native = require('../../native.js')
const { ValidationError, callNative } = require('../errors')
const { plainObject } = require('../scheduler-host')

const SOURCE_CONFIG = Symbol('rcc.routingConfig')

/** Keeps the config (which holds the API keys) with the table without making it enumerable. */
function withSource(table, config) {
  Object.defineProperty(table, SOURCE_CONFIG, { value: config, enumerable: false })
  return table
}

/** Expands a routing config (see crates/core/src/route/mod.rs) into a RoutingTable. */
function buildRoutingTable(config) {
  if (!plainObject(config)) throw new ValidationError('routing config must be an object', { field: 'config' })
  const text = JSON.stringify(config)
  return withSource(JSON.parse(callNative(() => native.buildRoutingTable(text))), JSON.parse(text))
}

/** Reads a JSON routing config file; errors name the file, line/column or the bad field's path. */
function loadRoutingTable(path) {
  if (typeof path !== 'string' || path === '') throw new ValidationError('path must be a non-empty string', { field: 'path' })
  const table = JSON.parse(callNative(() => native.buildRoutingTableFromFile(path)))
  // The file parsed and validated above; read it again for the keys the table leaves out.
  return withSource(table, JSON.parse(fs.readFileSync(path, 'utf8').replace(/^\uFEFF/, '')))
}

module.exports = { buildRoutingTable, loadRoutingTable, SOURCE_CONFIG }

// Validate an AsyncAPI document with the AsyncAPI project's parser (+ its Avro schema parser).
// usage: node .ci/validate-asyncapi.mjs <parser-dir> <document>   exit 0 valid, 1 errors (printed)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [parserDir, docPath] = process.argv.slice(2);
if (!parserDir || !docPath) {
  console.error('usage: node validate-asyncapi.mjs <parser-dir> <document>');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(parserDir), 'package.json'));
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');
const { AvroSchemaParser } = require('@asyncapi/avro-schema-parser');

const avro = AvroSchemaParser();
const parser = new Parser();
parser.registerSchemaParser(avro);
const text = readFileSync(docPath, 'utf8');
const { document, diagnostics } = await parser.parse(text, { source: path.resolve(docPath) });
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);

// The parser runs registered schema parsers' validate() only for AsyncAPI 2.x documents; for 3.x it only
// converts. So every Avro multi-format schema is also validated explicitly by the same Avro schema parser.
const raw = JSON.parse(text);
let avroChecked = 0;
for (const [name, multi] of Object.entries(raw.components?.schemas ?? {})) {
  if (!String(multi.schemaFormat ?? '').startsWith('application/vnd.apache.avro')) continue;
  avroChecked += 1;
  const where = ['components', 'schemas', name, 'schema'];
  for (const d of await avro.validate({ data: multi.schema, path: where, asyncapi: {}, schemaFormat: multi.schemaFormat })) {
    const diag = { code: 'avro-schema', message: d.message, path: d.path, severity: DiagnosticSeverity.Error };
    diagnostics.push(diag);
    errors.push(diag);
  }
}
for (const d of diagnostics) {
  const level = ['error', 'warning', 'info', 'hint'][d.severity] ?? d.severity;
  console.log(`${level}: ${d.code}: ${d.message} at /${(d.path || []).join('/')}`);
}
if (errors.length || !document) {
  console.log(`INVALID: ${errors.length} error(s) in ${docPath}`);
  process.exit(1);
}
const channels = document.channels().length;
const messages = document.components().messages().length;
const schemas = document.components().schemas().length;
console.log(`valid AsyncAPI ${document.version()}: ${channels} channels, ${messages} messages, ${schemas} schemas, ${avroChecked} Avro schemas valid (${docPath})`);

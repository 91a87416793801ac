// Output of ls/ps/inspect: table, json, -q and the Go-template-like --format ({{.Field}}, {{json .}},
// `table` with a header), checked on fixed rows — the renderer is pure.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CliError } from '../../client/context.ts';
import { checkFormat, fieldName, parseTemplate, renderInspect, renderListing, type Listing } from '../../cli/format.ts';

const objects = [
  { id: 'aaaaaaaaaaaaaaaa', spec: { name: 'web', mode: { replicated: { replicas: 3 } } } },
  { id: 'bbbbbbbbbbbbbbbb', spec: { name: 'api', mode: { global: {} } } },
];
const listing: Listing = {
  headers: ['ID', 'NAME', 'DESIRED STATE'],
  rows: objects.map((o, i) => ({ id: o.id, object: o, cells: [o.id.slice(0, 12), o.spec.name, i === 0 ? 'Running' : 'Shutdown'] })),
};

describe('--format', () => {
  it('table (default), json and -q', () => {
    assert.equal(renderListing(listing, {}), 'ID             NAME   DESIRED STATE\naaaaaaaaaaaa   web    Running\nbbbbbbbbbbbb   api    Shutdown');
    assert.equal(renderListing(listing, { format: 'table' }), renderListing(listing, {}));
    assert.deepEqual(JSON.parse(renderListing(listing, { format: 'json' })), objects);
    assert.equal(renderListing(listing, { quiet: true }), 'aaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbb');
    assert.equal(renderListing(listing, { quiet: true, format: 'json' }), 'aaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbb', '-q wins, as in Docker');
  });

  it('column fields, API fields and nested paths', () => {
    assert.equal(fieldName('DESIRED STATE'), 'DesiredState');
    assert.equal(fieldName('CPU %'), 'CPU');
    assert.equal(renderListing(listing, { format: '{{.Name}}' }), 'web\napi');
    assert.equal(renderListing(listing, { format: '{{.ID}}: {{.DesiredState}}' }), 'aaaaaaaaaaaa: Running\nbbbbbbbbbbbb: Shutdown');
    assert.equal(
      renderListing(listing, { format: '{{.Spec.Mode}}' }),
      '{"replicated":{"replicas":3}}\n{"global":{}}',
      'falls back to the API object, case-insensitively',
    );
    assert.equal(renderListing(listing, { format: '{{.Spec.Nope}}' }), '<no value>\n<no value>');
    assert.equal(renderListing(listing, { format: '{{ .Name }}' }), 'web\napi', 'spaces inside braces');
  });

  it('{{json .}} and {{json .Field}}', () => {
    assert.deepEqual(JSON.parse(renderListing(listing, { format: '{{json .}}' }).split('\n')[0]!), {
      ID: 'aaaaaaaaaaaa',
      Name: 'web',
      DesiredState: 'Running',
    });
    assert.equal(renderListing(listing, { format: '{{json .Name}}' }), '"web"\n"api"');
    assert.equal(renderInspect(objects, '{{json .Spec.Mode}}'), '{"replicated":{"replicas":3}}\n{"global":{}}');
  });

  it('table templates: a header from the field names, aligned columns, \\t and \\n written literally', () => {
    assert.equal(renderListing(listing, { format: 'table {{.ID}}\\t{{.Name}}' }), 'ID             NAME\naaaaaaaaaaaa   web\nbbbbbbbbbbbb   api');
    assert.equal(renderListing(listing, { format: 'table {{.Name}}\t{{.DesiredState}}' }), 'NAME   DESIRED STATE\nweb    Running\napi    Shutdown');
    assert.equal(renderListing(listing, { format: '{{.Name}}\\n-' }), 'web\n-\napi\n-');
  });

  it('inspect: a JSON array by default, a template per object', () => {
    assert.deepEqual(JSON.parse(renderInspect(objects, undefined)), objects);
    assert.deepEqual(JSON.parse(renderInspect(objects, 'json')), objects);
    assert.equal(renderInspect(objects, '{{.Spec.Name}} {{.ID}}'), 'web aaaaaaaaaaaaaaaa\napi bbbbbbbbbbbbbbbb');
    assert.throws(() => renderInspect(objects, 'table'), CliError);
  });

  it('refuses what it cannot render, with one line', () => {
    for (const bad of ['yaml', '{{.Name', '{{index .Labels "x"}}', '{{.Na-me}}', 'tables']) {
      assert.throws(
        () => checkFormat(bad),
        (e: unknown) => e instanceof CliError && !e.message.includes('\n'),
        bad,
      );
    }
    for (const good of ['json', 'table', '{{.ID}}', 'table {{.ID}}', '{{json .}}']) checkFormat(good);
    assert.equal(parseTemplate('table {{.ID}}').table, true);
  });
});

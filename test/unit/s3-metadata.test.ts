import { expect } from 'chai';
import { MAX_METADATA_BYTES, metadataBytes, metadataItem, objectMetadata } from '../../connectors/s3/s3-metadata.js';

const RUN_ID = '20261124T120000Z-ab12';
const names = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}-${i}-${'x'.repeat(30)}`);
/** As the object ends: with the largest record count. */
const withRecords = (m: Record<string, string>) => ({ ...m, records: String(Number.MAX_SAFE_INTEGER) });
const decoded = (list: string) => (list === '' ? [] : list.split(',').map(decodeURIComponent));

describe('S3 object metadata: lists that read back unambiguously, within S3\'s 2 KB', () => {
  it('an item is written as it is unless it holds ",", "%", text that is not printable ASCII, or a space at either end', () => {
    expect(metadataItem('hot rule')).to.equal('hot rule');
    expect(metadataItem('a,b%c')).to.equal('a%2Cb%25c');
    expect(metadataItem(' padded ')).to.equal('%20padded%20');
    expect(metadataItem('x\ud800')).to.equal('x%EF%BF%BD');
    for (const name of ['hot rule', 'a,b%c', ' padded ', 'température', 'tab\there']) expect(decodeURIComponent(metadataItem(name))).to.equal(name);
  });

  it('many rules and many datasources: both lists are cut, each says how many it left out, and the whole stays within 2 KB', () => {
    const rules = names('rule', 100);
    const datasources = names('source', 100);
    const metadata = objectMetadata({ rules, datasources, runId: RUN_ID }, 'parquet');
    expect(metadataBytes(withRecords(metadata))).to.be.at.most(MAX_METADATA_BYTES);
    const keptRules = decoded(metadata.rule!);
    const keptSources = decoded(metadata.datasource!);
    expect(keptRules).to.deep.equal(rules.slice(0, keptRules.length));
    expect(keptSources).to.deep.equal(datasources.slice(0, keptSources.length));
    expect(Number(metadata['rules-omitted'])).to.equal(100 - keptRules.length);
    expect(Number(metadata['datasources-omitted'])).to.equal(100 - keptSources.length);
    // Shared fairly: neither list takes all the room.
    expect(keptRules.length).to.be.greaterThan(5);
    expect(keptSources.length).to.be.greaterThan(5);
  });

  it('a short list keeps all its room: one datasource and many rules cut only the rules', () => {
    const metadata = objectMetadata({ rules: names('rule', 100), datasources: ['sensors'], runId: RUN_ID }, 'json');
    expect(metadata.datasource).to.equal('sensors');
    expect(metadata).not.to.have.property('datasources-omitted');
    expect(metadataBytes(withRecords(metadata))).to.be.within(MAX_METADATA_BYTES - 60, MAX_METADATA_BYTES);
  });

  it('one name longer than the whole room: the list is empty and says 1 left out', () => {
    const metadata = objectMetadata({ rules: ['r'.repeat(3000)], datasources: ['sensors'], runId: RUN_ID }, 'json');
    expect(metadata).to.include({ rule: '', 'rules-omitted': '1', datasource: 'sensors', 'run-id': RUN_ID, format: 'json' });
  });
});

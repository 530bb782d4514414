// System test: the AWS SDK for JavaScript v3 Kinesis client against a running Tributary,
// over HTTP/2 with prior knowledge on plain http:// (the SDK's NodeHttp2Handler, as the
// Kinesis client uses by default).
//
//   TR_ENDPOINT=http://127.0.0.1:PORT node tests/js/kinesis.test.mjs
//
// Prints one line per check and closes with `test_kinesis_js: N passed, M failed`; exits 1
// when anything failed. tests/system/test_kinesis_js.sh starts the server and runs this.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { createHash, randomBytes } from 'node:crypto';

import {
  KinesisClient,
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamCommand,
  DescribeStreamSummaryCommand,
  ListStreamsCommand,
  ListShardsCommand,
  PutRecordCommand,
  PutRecordsCommand,
  GetShardIteratorCommand,
  GetRecordsCommand,
  RegisterStreamConsumerCommand,
  DescribeStreamConsumerCommand,
  SubscribeToShardCommand,
} from '@aws-sdk/client-kinesis';
import { NodeHttp2Handler } from '@smithy/node-http-handler';

const endpoint = process.env.TR_ENDPOINT;
if (!endpoint) {
  console.error('set TR_ENDPOINT=http://127.0.0.1:PORT');
  process.exit(2);
}

const client = new KinesisClient({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIDTRIBUTARYTEST', secretAccessKey: 'secret' },
  requestHandler: new NodeHttp2Handler({ requestTimeout: 20000, sessionTimeout: 30000 }),
  maxAttempts: 1, // a retry would hide a server error
});

let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   - ${name}`);
  } catch (err) {
    failed++;
    const what = err && err.name ? `${err.name}: ${err.message}` : String(err);
    console.log(`FAIL - ${name}: ${what}`);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitActive(name) {
  for (let i = 0; i < 100; i++) {
    const d = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (d.StreamDescriptionSummary.StreamStatus === 'ACTIVE') return d.StreamDescriptionSummary;
    await sleep(100);
  }
  throw new Error(`stream ${name} did not become ACTIVE`);
}

// Reads a shard from TRIM_HORIZON to its current end.
async function readShard(streamName, shardId, type = 'TRIM_HORIZON', seq = undefined) {
  const it = await client.send(new GetShardIteratorCommand({
    StreamName: streamName, ShardId: shardId, ShardIteratorType: type,
    StartingSequenceNumber: seq,
  }));
  let iterator = it.ShardIterator;
  const out = [];
  for (let i = 0; i < 1000 && iterator; i++) {
    const r = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 10000 }));
    out.push(...r.Records);
    iterator = r.NextShardIterator;
    if (r.Records.length === 0) break;
  }
  return out;
}

const text = (u8) => Buffer.from(u8).toString('utf8');
const stream = `js-sdk-${Date.now()}`;

// ---- the transport: a raw node:http2 session proves the port speaks h2 with prior knowledge
await check('raw http2 prior-knowledge session answers /health', async () => {
  const session = http2.connect(endpoint);
  try {
    const status = await new Promise((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':method': 'GET', ':path': '/health' });
      req.on('response', (h) => resolve(h[':status']));
      req.on('error', reject);
      req.resume();
      req.end();
    });
    assert.equal(status, 200);
  } finally {
    session.close();
  }
});

// ---- control plane
await check('CreateStream (2 shards) and ACTIVE', async () => {
  await client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 2 }));
  const s = await waitActive(stream);
  assert.equal(s.OpenShardCount, 2);
  assert.equal(s.StreamName, stream);
});

await check('CreateStream again is ResourceInUseException', async () => {
  await assert.rejects(
    client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 })),
    (e) => e.name === 'ResourceInUseException' && e.$metadata.httpStatusCode === 400,
  );
});

await check('DescribeStream of a missing stream is ResourceNotFoundException', async () => {
  await assert.rejects(
    client.send(new DescribeStreamCommand({ StreamName: `${stream}-missing` })),
    (e) => e.name === 'ResourceNotFoundException' && /not found/.test(e.message),
  );
});

await check('ListStreams includes the stream', async () => {
  const r = await client.send(new ListStreamsCommand({}));
  assert.ok(r.StreamNames.includes(stream), JSON.stringify(r.StreamNames));
});

let shards = [];
await check('ListShards: 2 shards covering the hash key space', async () => {
  const r = await client.send(new ListShardsCommand({ StreamName: stream }));
  shards = r.Shards;
  assert.equal(shards.length, 2);
  assert.equal(shards[0].HashKeyRange.StartingHashKey, '0');
  assert.equal(shards[1].HashKeyRange.EndingHashKey, (2n ** 128n - 1n).toString());
  assert.equal(BigInt(shards[0].HashKeyRange.EndingHashKey) + 1n,
               BigInt(shards[1].HashKeyRange.StartingHashKey));
});

// The shard a partition key lands on, as Kinesis routes: MD5 as a 128-bit integer.
const shardOf = (pk) => {
  const h = BigInt('0x' + createHash('md5').update(pk).digest('hex'));
  return shards.find((s) => BigInt(s.HashKeyRange.StartingHashKey) <= h &&
                            h <= BigInt(s.HashKeyRange.EndingHashKey)).ShardId;
};

// ---- data plane
const put = []; // {pk, data, seq, shard}
await check('PutRecords: 300 records, none failed, answered in request order', async () => {
  const batch = [];
  for (let i = 0; i < 300; i++) {
    batch.push({ PartitionKey: `pk-${i % 37}`, Data: Buffer.from(`record-${i}`) });
  }
  const r = await client.send(new PutRecordsCommand({ StreamName: stream, Records: batch }));
  assert.equal(r.FailedRecordCount, 0);
  assert.equal(r.Records.length, 300);
  r.Records.forEach((x, i) => {
    assert.match(x.SequenceNumber, /^\d+$/);
    assert.equal(x.ShardId, shardOf(batch[i].PartitionKey), `record ${i} routed by MD5`);
    put.push({ pk: batch[i].PartitionKey, data: `record-${i}`, seq: x.SequenceNumber,
               shard: x.ShardId });
  });
});

await check('PutRecord with ExplicitHashKey lands on the last shard', async () => {
  const r = await client.send(new PutRecordCommand({
    StreamName: stream, PartitionKey: 'explicit', Data: Buffer.from('explicit-data'),
    ExplicitHashKey: (2n ** 128n - 1n).toString(),
  }));
  assert.equal(r.ShardId, shards[1].ShardId);
  put.push({ pk: 'explicit', data: 'explicit-data', seq: r.SequenceNumber, shard: r.ShardId });
});

await check('100 concurrent PutRecord multiplexed on one HTTP/2 session', async () => {
  const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => client.send(
    new PutRecordCommand({ StreamName: stream, PartitionKey: `conc-${i}`,
                           Data: Buffer.from(`conc-${i}`) }))));
  rs.forEach((r, i) => {
    assert.equal(r.ShardId, shardOf(`conc-${i}`));
    put.push({ pk: `conc-${i}`, data: `conc-${i}`, seq: r.SequenceNumber, shard: r.ShardId });
  });
});

const big = randomBytes(1024 * 1024 - 64); // past every HTTP/2 flow-control window default
await check('PutRecord of a ~1 MiB record (HTTP/2 flow control on the request)', async () => {
  const r = await client.send(new PutRecordCommand({
    StreamName: stream, PartitionKey: 'big', Data: big,
  }));
  assert.equal(r.ShardId, shardOf('big'));
  put.push({ pk: 'big', data: null, seq: r.SequenceNumber, shard: r.ShardId });
});

const got = new Map(); // shardId -> records
await check('GetShardIterator TRIM_HORIZON + GetRecords return every record of each shard', async () => {
  for (const s of shards) got.set(s.ShardId, await readShard(stream, s.ShardId));
  for (const s of shards) {
    const want = put.filter((p) => p.shard === s.ShardId);
    const have = got.get(s.ShardId);
    assert.equal(have.length, want.length, `${s.ShardId}: count`);
    // Per shard, sequence numbers strictly increase and match what the puts returned.
    for (let i = 1; i < have.length; i++) {
      assert.ok(BigInt(have[i - 1].SequenceNumber) < BigInt(have[i].SequenceNumber));
    }
    const bySeq = new Map(have.map((r) => [r.SequenceNumber, r]));
    for (const p of want) {
      const r = bySeq.get(p.seq);
      assert.ok(r, `sequence number ${p.seq} read back`);
      assert.equal(r.PartitionKey, p.pk);
      if (p.data === null) assert.ok(Buffer.from(r.Data).equals(big), 'big record bytes');
      else assert.equal(text(r.Data), p.data);
      assert.ok(r.ApproximateArrivalTimestamp instanceof Date);
      assert.ok(Math.abs(r.ApproximateArrivalTimestamp.getTime() - Date.now()) < 60000);
    }
  }
});

await check('GetRecords of PutRecords keep the batch order within a shard', async () => {
  for (const s of shards) {
    const want = put.filter((p) => p.shard === s.ShardId && p.data?.startsWith('record-'))
      .map((p) => p.data);
    const have = got.get(s.ShardId).map((r) => (r.PartitionKey === 'big' ? null : text(r.Data)))
      .filter((d) => d?.startsWith('record-'));
    assert.deepEqual(have, want);
  }
});

await check('AFTER_SEQUENCE_NUMBER and AT_SEQUENCE_NUMBER iterators', async () => {
  const first = put[0];
  const after = await readShard(stream, first.shard, 'AFTER_SEQUENCE_NUMBER', first.seq);
  assert.ok(BigInt(after[0].SequenceNumber) > BigInt(first.seq));
  const at = await readShard(stream, first.shard, 'AT_SEQUENCE_NUMBER', first.seq);
  assert.equal(at[0].SequenceNumber, first.seq);
  assert.equal(at.length, after.length + 1);
});

await check('LATEST iterator sees only records put after it', async () => {
  const sh = shards[0].ShardId;
  const it = await client.send(new GetShardIteratorCommand({
    StreamName: stream, ShardId: sh, ShardIteratorType: 'LATEST',
  }));
  const empty = await client.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator }));
  assert.equal(empty.Records.length, 0);
  const pk = [...Array(200).keys()].map((i) => `latest-${i}`).find((k) => shardOf(k) === sh);
  const p = await client.send(new PutRecordCommand({
    StreamName: stream, PartitionKey: pk, Data: Buffer.from('after-latest'),
  }));
  const r = await client.send(new GetRecordsCommand({ ShardIterator: empty.NextShardIterator }));
  assert.equal(r.Records.length, 1);
  assert.equal(r.Records[0].SequenceNumber, p.SequenceNumber);
  assert.equal(text(r.Records[0].Data), 'after-latest');
  assert.equal(typeof r.MillisBehindLatest, 'number');
});

await check('GetRecords with a bad iterator is InvalidArgumentException', async () => {
  await assert.rejects(
    client.send(new GetRecordsCommand({ ShardIterator: 'AAAAnot-an-iterator' })),
    (e) => e.name === 'InvalidArgumentException' || e.name === 'ExpiredIteratorException',
  );
});

// ---- enhanced fan-out: RegisterStreamConsumer + SubscribeToShard (HTTP/2 event stream).
// A server without it answers UnknownOperationException: that is reported as a failure
// naming the missing operation, never skipped.
function unknownOp(e, op) {
  if (e && (e.name === 'UnknownOperationException' || e.Code === 'UnknownOperationException'))
    throw new Error(`${op} is not implemented by the server (UnknownOperationException)`);
  throw e;
}

let consumerARN = null;
let streamARN = null;
await check('RegisterStreamConsumer and the consumer becomes ACTIVE', async () => {
  const d = await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
  streamARN = d.StreamDescriptionSummary.StreamARN;
  const r = await client.send(new RegisterStreamConsumerCommand({
    StreamARN: streamARN, ConsumerName: 'js-efo',
  })).catch((e) => unknownOp(e, 'RegisterStreamConsumer'));
  assert.match(r.Consumer.ConsumerARN, /^arn:aws:kinesis:[^:]+:\d+:stream\/[^/]+\/consumer\/js-efo:\d+$/);
  consumerARN = r.Consumer.ConsumerARN;
  for (let i = 0; i < 100; i++) {
    const c = await client.send(new DescribeStreamConsumerCommand({ ConsumerARN: consumerARN }))
      .catch((e) => unknownOp(e, 'DescribeStreamConsumer'));
    if (c.ConsumerDescription.ConsumerStatus === 'ACTIVE') return;
    await sleep(100);
  }
  throw new Error('consumer did not become ACTIVE');
});

await check('SubscribeToShard over HTTP/2 delivers records put after subscribing', async () => {
  assert.ok(consumerARN, 'needs the consumer registered above');
  const shardId = shards[0].ShardId;
  const keys = [...Array(500).keys()].map((i) => `efo-${i}`).filter((k) => shardOf(k) === shardId)
    .slice(0, 20);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 15000);
  try {
    const sub = await client.send(new SubscribeToShardCommand({
      ConsumerARN: consumerARN, ShardId: shardId, StartingPosition: { Type: 'LATEST' },
    }), { abortSignal: abort.signal }).catch((e) => unknownOp(e, 'SubscribeToShard'));
    // Put only once the subscription is established (the initial response is in).
    const putDone = client.send(new PutRecordsCommand({
      StreamName: stream,
      Records: keys.map((k) => ({ PartitionKey: k, Data: Buffer.from(`efo:${k}`) })),
    }));
    const seen = [];
    let lastContinuation = null;
    for await (const ev of sub.EventStream) {
      if (ev.SubscribeToShardEvent) {
        const e = ev.SubscribeToShardEvent;
        assert.match(e.ContinuationSequenceNumber, /^\d+$/);
        assert.equal(typeof e.MillisBehindLatest, 'number');
        lastContinuation = e.ContinuationSequenceNumber;
        for (const r of e.Records) seen.push(text(r.Data));
        if (seen.length >= keys.length) break;
      } else {
        throw new Error(`unexpected event ${JSON.stringify(Object.keys(ev))}`);
      }
    }
    const p = await putDone;
    assert.equal(p.FailedRecordCount, 0);
    assert.deepEqual(seen, keys.map((k) => `efo:${k}`));
    assert.ok(BigInt(lastContinuation) >= BigInt(p.Records.at(-1).SequenceNumber));
  } catch (e) {
    if (abort.signal.aborted) throw new Error('SubscribeToShard: no records within 15 s');
    throw e;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
});

// ---- clean up
await check('DeleteStream', async () => {
  await client.send(new DeleteStreamCommand({ StreamName: stream, EnforceConsumerDeletion: true }));
  for (let i = 0; i < 100; i++) {
    try {
      await client.send(new DescribeStreamSummaryCommand({ StreamName: stream }));
    } catch (e) {
      if (e.name === 'ResourceNotFoundException') return;
      throw e;
    }
    await sleep(100);
  }
  throw new Error('stream still there after DeleteStream');
});

client.destroy();
console.log(`test_kinesis_js: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);

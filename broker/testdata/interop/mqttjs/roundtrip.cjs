// MQTT.js against the broker: the client of browser dashboards (over
// WebSocket) and of many Node.js services. Run by TestInteropMQTTJS as
//
//   node roundtrip.cjs TCP_URL WS_URL WSS_URL CA_FILE ID_PREFIX
//
// with NODE_PATH pointing at the node_modules that hack/install-test-deps.sh
// installed. Each check prints "ok <name>"; the last line is PASS, or the
// script prints the failure and exits 1.
'use strict';

const fs = require('fs');
const mqtt = require('mqtt');

const [tcpURL, wsURL, wssURL, caFile, prefix] = process.argv.slice(2);
const ca = fs.readFileSync(caFile);
const waitMs = 10000;

let seq = 0;
function id(name) {
  return `${prefix}-${name}-${++seq}`;
}

// connect resolves with a connected client, or rejects with the error.
function connect(url, opts) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: waitMs, ...opts });
    c.once('connect', (connack) => { c.connack = connack; resolve(c); });
    c.once('error', reject);
  });
}

// collect gathers the messages a client receives, and waits for n of them.
function collect(c) {
  const got = [];
  const waiters = [];
  c.on('message', (topic, payload, packet) => {
    got.push({ topic, payload: payload.toString(), packet });
    for (const w of waiters.splice(0)) w();
  });
  got.waitFor = (n, what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: ${got.length} of ${n} messages after ${waitMs} ms: ${JSON.stringify(got.map((m) => [m.topic, m.payload]))}`)), waitMs);
    const check = () => {
      if (got.length >= n) { clearTimeout(timer); resolve(got); } else waiters.push(check);
    };
    check();
  });
  return got;
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

const end = (...cs) => Promise.all(cs.map((c) => c.endAsync()));

async function qosRoundTrip(url, version, name, extra = {}) {
  const sub = await connect(url, { clientId: id('sub'), protocolVersion: version, ...extra });
  const got = collect(sub);
  const granted = await sub.subscribeAsync(`js/${name}/+`, { qos: 2 });
  expect(granted[0].qos === 2, `${name}: granted ${JSON.stringify(granted)}`);
  const pub = await connect(url, { clientId: id('pub'), protocolVersion: version, ...extra });
  for (const qos of [0, 1, 2]) {
    await pub.publishAsync(`js/${name}/q${qos}`, `${name} qos ${qos}`, { qos });
  }
  await got.waitFor(3, name);
  for (const qos of [0, 1, 2]) {
    const m = got.find((x) => x.topic === `js/${name}/q${qos}`);
    expect(m && m.payload === `${name} qos ${qos}` && m.packet.qos === qos, `${name}: QoS ${qos} message ${JSON.stringify(m && [m.topic, m.payload, m.packet.qos])}`);
  }
  await end(sub, pub);
  console.log(`ok ${name}: QoS 0, 1 and 2 in and out`);
}

async function main() {
  await qosRoundTrip(tcpURL, 4, 'tcp-3.1.1');
  await qosRoundTrip(tcpURL, 5, 'tcp-5.0');
  await qosRoundTrip(wsURL, 5, 'ws-5.0');
  await qosRoundTrip(wssURL, 4, 'wss-3.1.1', { ca });

  // Retained: a later subscriber gets the message with the retain flag.
  {
    const pub = await connect(tcpURL, { clientId: id('retainer') });
    await pub.publishAsync('js/retained', 'kept', { qos: 1, retain: true });
    const late = await connect(wsURL, { clientId: id('late'), protocolVersion: 5 });
    const got = collect(late);
    await late.subscribeAsync('js/retained', { qos: 1 });
    await got.waitFor(1, 'retained');
    expect(got[0].payload === 'kept' && got[0].packet.retain === true, `retained: ${JSON.stringify([got[0].payload, got[0].packet.retain])}`);
    await pub.publishAsync('js/retained', '', { qos: 1, retain: true }); // delete it
    await end(pub, late);
    console.log('ok retained message over tcp, read over ws');
  }

  // MQTT 5 properties pass through unchanged; topic aliases work both ways
  // (MQTT.js assigns them when publishing, and resolves the broker's).
  {
    const sub = await connect(tcpURL, { clientId: id('props-sub'), protocolVersion: 5, properties: { topicAliasMaximum: 10 } });
    const got = collect(sub);
    await sub.subscribeAsync('js/props/#', { qos: 1, properties: { subscriptionIdentifier: 42 } });
    const pub = await connect(tcpURL, { clientId: id('props-pub'), protocolVersion: 5, autoAssignTopicAlias: true });
    expect(pub.connack.properties && pub.connack.properties.topicAliasMaximum > 0, `CONNACK properties ${JSON.stringify(pub.connack.properties)}`);
    const props = {
      userProperties: { site: 'plant-7', line: '3' },
      contentType: 'application/json',
      payloadFormatIndicator: true,
      responseTopic: 'js/reply/1',
      correlationData: Buffer.from([1, 2, 3, 250]),
      messageExpiryInterval: 600,
    };
    for (let i = 0; i < 3; i++) {
      await pub.publishAsync('js/props/line/3/temperature', JSON.stringify({ i }), { qos: 1, properties: props });
    }
    await got.waitFor(3, 'v5 properties');
    got.forEach((m, i) => {
      const p = m.packet.properties || {};
      expect(m.topic === 'js/props/line/3/temperature' && m.payload === JSON.stringify({ i }), `message ${i}: ${m.topic} ${m.payload}`);
      expect(p.contentType === props.contentType && p.responseTopic === props.responseTopic &&
        Buffer.compare(p.correlationData, props.correlationData) === 0 && p.payloadFormatIndicator === true &&
        p.userProperties && p.userProperties.site === 'plant-7' && p.userProperties.line === '3' &&
        p.messageExpiryInterval > 0 && p.messageExpiryInterval <= 600 &&
        [].concat(p.subscriptionIdentifier).includes(42), `message ${i} properties ${JSON.stringify(p)}`);
    });
    await end(sub, pub);
    console.log('ok MQTT 5 properties, subscription identifier and topic aliases');
  }

  // Shared subscription: every message to exactly one member of the group.
  {
    const members = [await connect(wsURL, { clientId: id('share-a'), protocolVersion: 5 }), await connect(tcpURL, { clientId: id('share-b') })];
    const gots = members.map(collect);
    for (const m of members) await m.subscribeAsync('$share/js/js/shared/#', { qos: 1 });
    const pub = await connect(tcpURL, { clientId: id('share-pub'), protocolVersion: 5 });
    const n = 20;
    for (let i = 0; i < n; i++) await pub.publishAsync(`js/shared/${i}`, `s${i}`, { qos: 1 });
    const deadline = Date.now() + waitMs;
    while (gots[0].length + gots[1].length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const all = gots[0].concat(gots[1]).map((m) => m.payload).sort();
    expect(all.length === n && new Set(all).size === n, `shared: ${gots[0].length} + ${gots[1].length} messages, ${new Set(all).size} distinct, want ${n}`);
    expect(gots[0].length > 0 && gots[1].length > 0, `shared: split ${gots[0].length}/${gots[1].length}; want both members used`);
    await end(pub, ...members);
    console.log(`ok shared subscription split ${gots[0].length}/${gots[1].length}`);
  }

  // Will: a client that vanishes without DISCONNECT has its will published.
  {
    const watcher = await connect(tcpURL, { clientId: id('will-watch'), protocolVersion: 5 });
    const got = collect(watcher);
    await watcher.subscribeAsync('js/will/#', { qos: 1 });
    const doomed = await connect(wsURL, {
      clientId: id('doomed'), protocolVersion: 5,
      will: { topic: 'js/will/doomed', payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    doomed.stream.destroy();
    await got.waitFor(1, 'will');
    expect(got[0].payload === 'gone', `will payload ${got[0].payload}`);
    await end(watcher);
    doomed.end(true);
    console.log('ok will published when a WebSocket client vanishes');
  }
  console.log('PASS');
}

main().then(() => process.exit(0), (err) => {
  console.log(`FAIL: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});

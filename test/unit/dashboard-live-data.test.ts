import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ansiToHtml, escapeHtml, stripAnsi } from '../../web/src/ansi.js';
import { SseParser } from '../../web/src/sse-parser.js';
import { SeriesWindow, TrafficHistory } from '../../web/src/traffic.js';

const counters = (rx: number, tx: number, udprx = 0, udptx = 0) => ({ tcprx: rx, tcptx: tx, udprx, udptx });

describe('dashboard SSE parser', () => {
  const stream =
    'retry: 3000\n\n: heartbeat\n\nevent: instance\ndata: {"type":"initial","n":1}\n\n' +
    'event: instance\r\ndata: {"a":\r\ndata: 2}\r\n\r\nid: 7\ndata:no-space\n\n';

  test('frames, comments, multi-line data, CRLF, retry', () => {
    const p = new SseParser();
    const got = p.push(stream);
    assert.deepEqual(got, [
      { event: 'instance', data: '{"type":"initial","n":1}', id: '' },
      { event: 'instance', data: '{"a":\n2}', id: '' },
      { event: 'message', data: 'no-space', id: '7' },
    ]);
    assert.equal(p.retry, 3000);
  });

  test('the same stream split at every position gives the same events', () => {
    const whole = new SseParser().push(stream);
    for (let i = 1; i < stream.length; i++) {
      const p = new SseParser();
      const got = [...p.push(stream.slice(0, i)), ...p.push(stream.slice(i))];
      assert.deepEqual(got, whole, `split at ${i}`);
    }
  });

  test('an unfinished frame is held until its blank line', () => {
    const p = new SseParser();
    assert.deepEqual(p.push('event: instance\ndata: {"x":1}\n'), []);
    assert.equal(p.push('\n').length, 1);
  });
});

describe('dashboard traffic rates', () => {
  test('rates are byte differences over time; the first sample gives none', () => {
    const h = new TrafficHistory();
    assert.equal(h.sample(counters(0, 0), 1000), undefined);
    assert.deepEqual(h.sample(counters(1000, 500, 1000, 0), 3000), { t: 3000, rx: 1000, tx: 250 });
    assert.deepEqual(h.current(), { t: 3000, rx: 1000, tx: 250 });
  });

  test('a counter reset counts what came since, never a negative rate', () => {
    const h = new TrafficHistory();
    h.sample(counters(10_000, 10_000), 0);
    assert.deepEqual(h.sample(counters(400, 0), 1000), { t: 1000, rx: 400, tx: 0 });
    assert.deepEqual(h.sample(counters(1400, 100), 2000), { t: 2000, rx: 1000, tx: 100 });
  });

  test('two reports at the same instant add no point; the history keeps 10 minutes', () => {
    const h = new TrafficHistory(10_000);
    h.sample(counters(0, 0), 0);
    h.sample(counters(100, 0), 1000);
    assert.equal(h.sample(counters(200, 0), 1000), undefined);
    assert.deepEqual(h.sample(counters(300, 0), 2000), { t: 2000, rx: 100, tx: 0 });
    for (let t = 3000; t <= 20_000; t += 1000) h.sample(counters(t, 0), t);
    assert.ok(h.points.every((p) => p.t >= 10_000));
    assert.equal(h.points.at(-1)?.t, 20_000);
  });

  test('a series window drops samples older than its window', () => {
    const w = new SeriesWindow(2, 5000);
    for (let t = 0; t <= 10_000; t += 1000) w.push(t, [t, -t]);
    assert.deepEqual(w.t, [5000, 6000, 7000, 8000, 9000, 10_000]);
    assert.deepEqual(w.values[1]?.at(0), -5000);
  });
});

describe('dashboard ANSI log rendering', () => {
  test('colours become classes; reset ends them', () => {
    assert.equal(
      ansiToHtml('2026  \x1b[32mINFO\x1b[0m  ready'),
      '2026  <span class="ansi-fg-green">INFO</span>  ready',
    );
    assert.equal(
      ansiToHtml('\x1b[1;91mX\x1b[22mY\x1b[m'),
      '<span class="ansi-fg-bright-red ansi-bold">X</span><span class="ansi-fg-bright-red">Y</span>',
    );
  });

  test('markup in a log line is escaped, inside and outside colours', () => {
    const html = ansiToHtml('<img src=x onerror=alert(1)> \x1b[31m"&\'</script>\x1b[0m');
    assert.doesNotMatch(html, /<img|<\/script>/);
    assert.equal(
      html,
      '&lt;img src=x onerror=alert(1)&gt; <span class="ansi-fg-red">&quot;&amp;&#39;&lt;/script&gt;</span>',
    );
    assert.equal(escapeHtml('a<b'), 'a&lt;b');
  });

  test('other escape sequences are dropped; stripAnsi leaves the text', () => {
    assert.equal(ansiToHtml('a\x1b[2Kb\x1b[1Ac'), 'abc');
    assert.equal(stripAnsi('\x1b[33mWARN\x1b[0m x'), 'WARN x');
  });
});

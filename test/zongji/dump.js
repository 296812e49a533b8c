// dump.js: reads a binlog with @vlasky/zongji and prints one JSON line per
// event, for replink's differential client harness
// (test/clients_zongji_test.go), which runs it against the master and
// against replink and compares the lines.
//
//   node dump.js --host H --port P --user U --password PW [--ssl-ca FILE]
//                (--file NAME [--position N] | --gtid-set SET)
//                [--server-id N] [--max-events N] [--idle-ms MS] [--first-ms MS]
//
// Each line is {"type", "timestamp", "nextPosition", "size", ...the
// event's decoded fields}: binlogName/position for Rotate, query and
// schema for Query, table names and column metadata for TableMap, rows
// (values) for row events, the GTID zongji attributes to the event. Byte
// strings (BLOB, BIT) print as {"hex": "..."}, 64-bit integers beyond
// 2^53 as strings, dates in ISO form. The last line says why it stopped,
// with zongji's resume point (filename, position, gtidSet); an error is
// printed as a line of type "error" and the exit status is 1.
//
// It stops after --max-events events, or once no event came for --idle-ms
// (2000 by default) after the last one, or for --first-ms (30000) from
// the start when none came at all (a server may take a while to find a
// GTID's place in its binlog).
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import ZongJi from '@vlasky/zongji';

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    user: { type: 'string' },
    password: { type: 'string', default: '' },
    'ssl-ca': { type: 'string' },
    file: { type: 'string' },
    position: { type: 'string' },
    'gtid-set': { type: 'string' },
    'server-id': { type: 'string', default: '5001' },
    'max-events': { type: 'string', default: '0' },
    'idle-ms': { type: 'string', default: '2000' },
    'first-ms': { type: 'string', default: '30000' },
  },
  strict: true,
});

const maxEvents = Number(args['max-events']);
const idleMs = Number(args['idle-ms']);
const firstMs = Number(args['first-ms']);

const dsn = {
  host: args.host,
  port: Number(args.port),
  user: args.user,
  password: args.password,
};
if (args['ssl-ca']) {
  // mysql2 verifies the chain (rejectUnauthorized defaults to true); it
  // checks the name only when the host is a name, not an IP address.
  dsn.ssl = { ca: fs.readFileSync(args['ssl-ca']), verifyIdentity: true };
}

// Every event zongji can decode (its README's list).
const includeEvents = [
  'unknown', 'query', 'intvar', 'rotate', 'format', 'xid', 'gtid',
  'anonymousgtid', 'previousgtids', 'mariadbgtid', 'mariadbgtidlist',
  'binlogcheckpoint', 'annotaterows', 'rowsquery', 'startencryption',
  'xaprepare', 'heartbeat', 'tablemap', 'writerows', 'updaterows',
  'deleterows',
];

const start = {
  serverId: Number(args['server-id']),
  includeEvents,
  requestAnnotateRows: true,
};
if (args['gtid-set'] !== undefined) {
  start.gtidSet = args['gtid-set'];
} else {
  start.filename = args.file;
  start.position = args.position === undefined ? 4 : Number(args.position);
}

// Fields of an event object that are zongji's own state, not decoded
// from the event: the shared table map, the instance, parser state.
const internal = new Set(['tableMap', 'zongji', 'useChecksum',
  'columns_present_bitmap', 'columns_present_bitmap2', 'statusVars']);

// plain turns a decoded value into something JSON prints exactly.
function plain(v) {
  if (Buffer.isBuffer(v)) {
    return { hex: v.toString('hex') };
  }
  if (typeof v === 'bigint') {
    return v.toString();
  }
  if (v instanceof Date) {
    return Number.isNaN(v.getTime()) ? 'Invalid Date' : v.toISOString();
  }
  if (Array.isArray(v)) {
    return v.map(plain);
  }
  if (v !== null && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) {
      o[k] = plain(v[k]);
    }
    return o;
  }
  return v;
}

function describe(evt, zongji) {
  const line = {
    type: evt.getTypeName(),
    timestamp: evt.timestamp,
    nextPosition: evt.nextPosition,
    size: evt.size,
  };
  for (const k of Object.keys(evt)) {
    if (k.startsWith('_') || internal.has(k) || k in line) {
      continue;
    }
    line[k] = plain(evt[k]);
  }
  if (evt.tableId !== undefined && zongji.tableMap[evt.tableId] &&
      line.tableName === undefined) {
    const t = zongji.tableMap[evt.tableId];
    line.schemaName = t.parentSchema;
    line.tableName = t.tableName;
  }
  return line;
}

const out = (obj) => fs.writeSync(1, JSON.stringify(obj) + '\n');

const zongji = new ZongJi(dsn);
let count = 0;
let idle = null;
let ended = false;

function end(reason, status) {
  if (ended) {
    return;
  }
  ended = true;
  clearTimeout(idle);
  out({
    type: 'end', reason, events: count,
    filename: zongji.options.filename, position: zongji.options.position,
    gtidSet: zongji.gtidSet,
  });
  // Exit without zongji.stop(): its KILL of the dump connection is not
  // part of reading the binlog.
  process.exit(status);
}

function armIdle(ms) {
  clearTimeout(idle);
  idle = setTimeout(() => end('idle', 0), ms);
}

zongji.on('binlog', (evt) => {
  if (ended) {
    return;
  }
  count++;
  out(describe(evt, zongji));
  if (maxEvents > 0 && count >= maxEvents) {
    end('max-events', 0);
    return;
  }
  armIdle(idleMs);
});

zongji.on('error', (err) => {
  out({
    type: 'error', code: err.code, errno: err.errno, sqlState: err.sqlState,
    message: err.sqlMessage || err.message,
  });
  end('error', 1);
});

armIdle(firstMs);
zongji.start(start);

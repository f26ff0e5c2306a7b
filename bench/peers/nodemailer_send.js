// nodemailer as a peer in herald's SMTP benchmark (bench/smtp_bench.cc --peers, run by
// bench/peers.sh): sends one personalised message per row of the benchmark's recipient list —
// the same From, To name, subject, text and HTML bodies, headers and attachments as herald's task,
// its {%column%} placeholders filled from the row — through one pooled SMTP transport
// (pool: true, maxConnections = the connection count) to the sink.
//
//   node nodemailer_send.js JOB.json
//
// JOB.json (written by smtp_bench): host, port, connections, messages_per_connection, helo_name,
// recipients (CSV file: a header row, comma-separated, no quoted fields), address_column, from,
// to_name, subject, text_file, html_file, headers {name: template}, attachments [{path, name,
// content_type}].
//
// Prints one line: sent=N failed=N send_s=S cpu_s=S rss_kb=K, where send_s and cpu_s (user +
// system CPU of this process) cover the sending only, from the first sendMail() to the last
// callback, as smtp_bench measures herald; rss_kb is the process's peak RSS. Messages are handed
// to the pool as its connections become free (its 'idle' event, as nodemailer's documentation
// shows for pooled bulk sending), so at most maxConnections messages are in memory at once.
'use strict';

const fs = require('fs');
const nodemailer = require('nodemailer');

function fail(text) {
  process.stderr.write(`nodemailer_send: ${text}\n`);
  process.exit(1);
}

if (process.argv.length !== 3) fail('usage: node nodemailer_send.js JOB.json');
const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

// The recipient list: smtp_bench writes plain comma-separated rows without quoting.
const lines = fs.readFileSync(job.recipients, 'utf8').split('\n').filter((line) => line !== '');
const columns = lines[0].split(',');
const rows = [];
for (let i = 1; i < lines.length; ++i) {
  if (lines[i].includes('"')) fail(`${job.recipients}:${i + 1}: quoted fields are not supported`);
  const cells = lines[i].split(',');
  if (cells.length !== columns.length) fail(`${job.recipients}:${i + 1}: ${cells.length} fields, expected ${columns.length}`);
  const row = {};
  columns.forEach((name, k) => { row[name] = cells[k]; });
  rows.push(row);
}

// {%column%} placeholders, as in herald's templates.
const fill = (template, row) =>
  template.replace(/\{%([A-Za-z0-9_]+)%\}/g, (whole, name) => (name in row ? row[name] : whole));

const text = fs.readFileSync(job.text_file, 'utf8');
const html = fs.readFileSync(job.html_file, 'utf8');
// Read once; nodemailer encodes them into each message.
const attachments = job.attachments.map((a) => ({
  filename: a.name,
  content: fs.readFileSync(a.path),
  contentType: a.content_type,
}));

function message(row) {
  const headers = {};
  for (const [name, value] of Object.entries(job.headers)) headers[name] = fill(value, row);
  return {
    from: job.from,
    to: { name: fill(job.to_name, row), address: row[job.address_column] },
    subject: fill(job.subject, row),
    text: fill(text, row),
    html: fill(html, row),
    headers,
    attachments,
  };
}

const transporter = nodemailer.createTransport({
  pool: true,
  host: job.host,
  port: job.port,
  secure: false,
  ignoreTLS: true,  // the sink offers no STARTTLS; herald's account says security = "none"
  name: job.helo_name,
  maxConnections: job.connections,
  maxMessages: job.messages_per_connection,  // herald's "reconnect every" default
});

let next = 0;
let finished = 0;
let failed = 0;
const start = process.hrtime.bigint();
const cpuStart = process.cpuUsage();

function done() {
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = process.cpuUsage(cpuStart);
  transporter.close();
  process.stdout.write(
    `sent=${finished - failed} failed=${failed} send_s=${seconds.toFixed(4)} ` +
      `cpu_s=${((cpu.user + cpu.system) / 1e6).toFixed(4)} rss_kb=${process.resourceUsage().maxRSS}\n`);
}

function send(row) {
  transporter.sendMail(message(row), (error) => {
    if (error) {
      if (++failed <= 5) process.stderr.write(`nodemailer_send: ${row[job.address_column]}: ${error.message}\n`);
    }
    if (++finished === rows.length) done();
  });
}

function feed() {
  while (next < rows.length && transporter.isIdle()) send(rows[next++]);
}

if (rows.length === 0) fail(`${job.recipients}: no recipients`);
transporter.on('idle', feed);
feed();

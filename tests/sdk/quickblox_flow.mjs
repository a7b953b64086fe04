// The official QuickBlox JS SDK (npm `quickblox`, pinned in package.json) as two users
// against a real xmppd under Node (SDK-CONTRACT §1.2, §3.2, §7): signed application
// sessions, sign-up, user sessions, chat over TCP with STARTTLS and PLAIN, a private
// dialog, a saved 1-1 message received by the other user, history.
//
// Configuration from the environment (tests/sdk/test_quickblox_sdk.py sets it):
//   QB_API       REST host:port, served over HTTPS (the SDK builds https://{api}/...)
//   QB_CHAT      the XMPP domain (server.domain), e.g. localhost
//   QB_C2S_HOST, QB_C2S_PORT  where the chat really listens: the Node SDK connects to the
//                SRV target of _xmpp-client._tcp.{QB_CHAT} or else {QB_CHAT}:5222, so
//                this script answers that SRV lookup with the test server's c2s port
//   QB_APP_ID, QB_AUTH_KEY, QB_AUTH_SECRET   from `xmppctl app create`
//   QB_STEP_TIMEOUT_MS       bound on every wait (default 10000)
//
// Prints one JSON line per step, {"step", "ok", "detail"}; stops at the first failure
// (then disconnects whatever is connected) and exits 1. Exit 0 when every step passed.

import dns from 'node:dns';
import { createRequire } from 'node:module';

import { StepFailed, check, describe, env, report, stepper } from './steps.mjs';

// The SDK logs to stdout (console.log); keep stdout for the JSON step lines.
console.log = (...args) => console.error(...args);

const STEP_TIMEOUT = Number(env('QB_STEP_TIMEOUT_MS', '10000'));
const CHAT = env('QB_CHAT');
const SRV_NAME = `_xmpp-client._tcp.${CHAT}`;
const c2s = { name: env('QB_C2S_HOST'), port: Number(env('QB_C2S_PORT')), priority: 0, weight: 0 };
const resolveSrv = dns.resolveSrv;
dns.resolveSrv = (name, callback) => {
  if (name === SRV_NAME) return process.nextTick(callback, null, [c2s]);
  return resolveSrv.call(dns, name, callback);
};

const require = createRequire(import.meta.url);
const QB = require('quickblox');

const appId = Number(env('QB_APP_ID'));
const authKey = env('QB_AUTH_KEY');
const authSecret = env('QB_AUTH_SECRET');
const config = {
  endpoints: { api: env('QB_API'), chat: CHAT },
  chatProtocol: { active: 2 },
  streamManagement: { enable: false },
  debug: { mode: 0 },
};

const { bounded, step } = stepper(STEP_TIMEOUT);

// The SDK's node-style callbacks as a promise. A network failure is a successful empty
// answer in the QB REST proxy (SDK-CONTRACT §1.2), so an empty result is an error here.
function call(fn, ...args) {
  return new Promise((resolve, reject) => {
    fn(...args, (error, result) => {
      if (error) reject(error);
      else if (result === undefined) reject(new Error('no answer (network failure?)'));
      else resolve(result);
    });
  });
}

const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const people = {
  a: { qb: new QB.QuickBlox(), login: `qb-a-${suffix}`, password: 'pw-A-12345678' },
  b: { qb: new QB.QuickBlox(), login: `qb-b-${suffix}`, password: 'pw-B-12345678' },
};
for (const p of Object.values(people)) p.qb.init(appId, authKey, authSecret, config);
const { a, b } = people;
const state = {};

async function flow() {
  for (const [key, p] of Object.entries(people)) {
    await step(`app_session_${key}`, async () => {
      const session = await call(p.qb.createSession.bind(p.qb), {});
      check(typeof session.token === 'string' && session.token, 'no token');
      check(!session.user_id, `an application session has user_id ${session.user_id}`);
      return { application_id: session.application_id };
    });
    await step(`signup_${key}`, async () => {
      const user = await call(p.qb.users.create.bind(p.qb.users), {
        login: p.login,
        password: p.password,
        full_name: `QB ${key.toUpperCase()}`,
      });
      check(Number.isInteger(user.id) && user.id > 0, `bad user id ${JSON.stringify(user)}`);
      check(user.login === p.login, `login ${user.login}`);
      p.id = user.id;
      return { id: user.id };
    });
    await step(`user_session_${key}`, async () => {
      const session = await call(p.qb.createSession.bind(p.qb), {
        login: p.login,
        password: p.password,
      });
      check(session.user_id === p.id, `session user_id ${session.user_id}`);
      return { user_id: session.user_id };
    });
  }

  for (const [key, p] of Object.entries(people)) {
    await step(`chat_connect_${key}`, async () => {
      // The stanzas node-xmpp-client sends, to see which SASL mechanism it chose.
      const client = p.qb.chat.Client;
      const send = client.send;
      let mechanism;
      client.send = function (stanza) {
        if (stanza.name === 'auth') mechanism = stanza.attrs.mechanism;
        return send.call(this, stanza);
      };
      await call(p.qb.chat.connect.bind(p.qb.chat), { userId: p.id, password: p.password });
      p.connected = true;
      check(p.qb.chat.isConnected, 'isConnected is false');
      check(client.connection.isSecure === true, 'the stream was not upgraded with STARTTLS');
      check(mechanism === 'PLAIN', `SASL mechanism ${mechanism}`);
      return { jid: p.qb.chat.helpers.getUserJid(p.id, appId), mechanism, secure: true };
    });
  }

  await step('dialog_create_private', async () => {
    const dialog = await call(a.qb.chat.dialog.create.bind(a.qb.chat.dialog), {
      type: 3,
      occupants_ids: [b.id],
    });
    check(typeof dialog._id === 'string' && dialog._id, `dialog ${JSON.stringify(dialog)}`);
    check(dialog.type === 3, `type ${dialog.type}`);
    const occupants = [...dialog.occupants_ids].sort((x, y) => x - y);
    check(JSON.stringify(occupants) === JSON.stringify([a.id, b.id].sort((x, y) => x - y)), `${occupants}`);
    state.dialogId = dialog._id;
    return { dialog_id: dialog._id };
  });

  await step('message_send_receive', async () => {
    const received = new Promise((resolve) => {
      b.qb.chat.onMessageListener = (userId, message) => {
        if (message.body === state.body) resolve({ userId, message });
      };
    });
    state.body = `hello from QB A ${suffix}`;
    const sentId = a.qb.chat.send(a.qb.chat.helpers.getUserJid(b.id, appId), {
      type: 'chat',
      body: state.body,
      extension: { save_to_history: 1, dialog_id: state.dialogId },
      markable: 1,
    });
    const { userId, message } = await received;
    check(userId === a.id, `from user ${userId}`);
    check(message.id === sentId, `id ${message.id}, sent ${sentId}`);
    check(message.type === 'chat', `type ${message.type}`);
    check(message.dialog_id === state.dialogId, `dialog_id ${message.dialog_id}`);
    return { id: message.id };
  });

  await step('history_list', async () => {
    const deadline = Date.now() + STEP_TIMEOUT / 2;
    for (;;) {
      const history = await call(b.qb.chat.message.list.bind(b.qb.chat.message), {
        chat_dialog_id: state.dialogId,
        sort_desc: 'date_sent',
        limit: 10,
      });
      const found = history.items.find((m) => m.message === state.body);
      if (found) {
        check(found.sender_id === a.id, `sender_id ${found.sender_id}`);
        check(found.recipient_id === b.id, `recipient_id ${found.recipient_id}`);
        return { items: history.items.length };
      }
      check(Date.now() < deadline, `not in history: ${JSON.stringify(history)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  // Users (SDK-CONTRACT §3.1; qbUsers.js): listUsers with filters and order, look-ups by
  // e-mail and login, an own-profile update, a password change and a login with it.
  await step('users_list_filter', async () => {
    const page = await call(a.qb.users.listUsers.bind(a.qb.users), {
      filter: [
        { field: 'id', param: 'ge', value: Math.min(a.id, b.id) },
        { field: 'login', param: 'in', value: [a.login, b.login] },
      ],
      order: { sort: 'desc', field: 'login' },
      per_page: 10,
    });
    const logins = page.items.map((item) => item.user.login);
    check(JSON.stringify(logins) === JSON.stringify([b.login, a.login]), `logins ${logins}`);
    check(page.total_entries === 2 && page.current_page === 1, `page ${JSON.stringify(page)}`);
    return { logins, per_page: page.per_page };
  });

  await step('profile_update', async () => {
    state.email = `qb-a-${suffix}@example.test`;
    const user = await call(a.qb.users.update.bind(a.qb.users), a.id, {
      full_name: 'QB A renamed',
      email: state.email,
      custom_data: '{"city":"Lyon"}',
    });
    check(user.id === a.id && user.full_name === 'QB A renamed', `user ${JSON.stringify(user)}`);
    check(user.email === state.email, `email ${user.email}`);
    return { full_name: user.full_name, email: user.email };
  });

  await step('users_get_by_email_and_login', async () => {
    const byEmail = await call(b.qb.users.get.bind(b.qb.users), { email: state.email });
    check(byEmail.id === a.id, `by email ${JSON.stringify(byEmail)}`);
    const byLogin = await call(b.qb.users.get.bind(b.qb.users), { login: a.login });
    check(byLogin.id === a.id && byLogin.custom_data === '{"city":"Lyon"}', `${byLogin.custom_data}`);
    return { by_email: byEmail.id, by_login: byLogin.id };
  });

  await step('password_change', async () => {
    const newPassword = 'pw-A-changed-1';
    const user = await call(a.qb.users.update.bind(a.qb.users), a.id, {
      old_password: a.password,
      password: newPassword,
    });
    check(user.id === a.id, `user ${JSON.stringify(user)}`);
    state.oldPassword = a.password;
    a.password = newPassword;
    return { id: user.id };
  });

  await step('login_with_new_password', async () => {
    const fresh = new QB.QuickBlox();
    fresh.init(appId, authKey, authSecret, config);
    const session = await call(fresh.createSession.bind(fresh), {
      login: a.login,
      password: a.password,
    });
    check(session.user_id === a.id, `session user_id ${session.user_id}`);
    let refused = null;
    try {
      await call(fresh.createSession.bind(fresh), { login: a.login, password: state.oldPassword });
    } catch (error) {
      refused = error.code;
    }
    check(refused === 401, `the old password answered ${refused}`);
    return { user_id: session.user_id, old_password: refused };
  });
}

async function disconnect() {
  await step('chat_disconnect', async () => {
    for (const p of Object.values(people)) {
      if (p.connected) p.qb.chat.disconnect();
      p.connected = false;
    }
    return null;
  });
}

let failed = false;
try {
  await flow();
} catch (error) {
  failed = true;
  if (!(error instanceof StepFailed)) report('flow', false, describe(error));
}
try {
  await disconnect();
} catch {
  failed = true;
}
process.exit(failed ? 1 : 0);

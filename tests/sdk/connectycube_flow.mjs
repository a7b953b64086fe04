// The official ConnectyCube JS SDK (npm `connectycube`, pinned in package.json) as two
// users against a real xmppd: session, sign-up, login, chat over WebSocket, dialogs,
// a saved 1-1 message and its history, unread counts, attachment filter, reactions,
// edit notification, search, disconnect.
//
// Configuration from the environment (tests/sdk/test_connectycube_sdk.py sets it):
//   CC_API_URL   REST base, e.g. http://127.0.0.1:5280
//   CC_CHAT      the XMPP domain (server.domain), e.g. localhost
//   CC_CHAT_URL  the WebSocket URL, e.g. ws://localhost:5280/xmpp-websocket
//   CC_APP_ID, CC_AUTH_KEY   from `xmppctl app create`
//   CC_STEP_TIMEOUT_MS       bound on every wait (default 10000)
//
// Prints one JSON line per step, {"step", "ok", "detail"}; stops at the first failure
// (then disconnects whatever is connected) and exits 1. Exit 0 when every step passed.

import ConnectyCube from 'connectycube';

import { StepFailed, check, describe, env, report, stepper } from './steps.mjs';

const STEP_TIMEOUT = Number(env('CC_STEP_TIMEOUT_MS', '10000'));
const credentials = { appId: env('CC_APP_ID'), authKey: env('CC_AUTH_KEY') };
// One config object for every instance: the SDK keeps a module-level copy (SDK-CONTRACT §1.1).
const config = {
  endpoints: {
    api_url: env('CC_API_URL'),
    chat: env('CC_CHAT'),
    chat_url: env('CC_CHAT_URL'),
  },
  chat: { reconnect: { enable: false, timeInterval: 5 }, streamManagement: { enable: false } },
  debug: { mode: 0 },
};

const { bounded, step } = stepper(STEP_TIMEOUT);

const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const people = {
  a: { cc: new ConnectyCube.ConnectyCube(), login: `sdk-a-${suffix}`, password: 'pw-A-12345678' },
  b: { cc: new ConnectyCube.ConnectyCube(), login: `sdk-b-${suffix}`, password: 'pw-B-12345678' },
};
for (const p of Object.values(people)) p.cc.init(credentials, config);
const { a, b } = people;
const stranger = new ConnectyCube.ConnectyCube(); // refusals, with no account of its own
stranger.init(credentials, config);

async function refused(call) {
  try {
    await call();
  } catch (error) {
    return error;
  }
  throw new Error('accepted, expected a refusal');
}

const state = {};

// Resolves with the first item of p[key] that matches, waiting for p's listeners.
function arrival(p, key, match) {
  return new Promise((resolve) => {
    const look = () => {
      const hit = p[key].find(match);
      if (hit) resolve(hit);
      else p.waiters.push(look);
    };
    look();
  });
}

async function flow() {
  // -- REST: sessions, sign-up, login -------------------------------------------------
  for (const [key, p] of Object.entries(people)) {
    await step(`app_session_${key}`, async () => {
      const session = await p.cc.createSession();
      check(session && typeof session.token === 'string' && session.token, 'no token');
      check(!session.user_id, `an application session has user_id ${session.user_id}`);
      return { application_id: session.application_id };
    });
    await step(`signup_${key}`, async () => {
      const { user } = await p.cc.users.signup({
        login: p.login,
        password: p.password,
        full_name: `SDK ${key.toUpperCase()}`,
      });
      check(Number.isInteger(user.id) && user.id > 0, `bad user id ${user.id}`);
      check(user.login === p.login, `login ${user.login}`);
      p.id = user.id;
      return { id: user.id };
    });
  }
  // A upgrades its application session (POST /login.json, same token); B opens a user
  // session with credentials (POST /session.json with user{login, password}).
  await step('login_a', async () => {
    const before = (await a.cc.getSession()).token;
    const user = await a.cc.login({ login: a.login, password: a.password });
    check(user.id === a.id, `logged in as ${user.id}`);
    const session = await a.cc.getSession();
    check(session.user_id === a.id, `session user_id ${session.user_id}`);
    check(session.token === before, 'the token changed on login');
    a.token = session.token;
    return { user_id: session.user_id };
  });
  await step('login_b', async () => {
    const session = await b.cc.createSession({ login: b.login, password: b.password });
    check(session.user_id === b.id, `session user_id ${session.user_id}`);
    b.token = session.token;
    return { user_id: session.user_id };
  });
  await step('users_get', async () => {
    const found = await a.cc.users.getV2({ id: { in: [a.id, b.id] } });
    const ids = found.items.map((u) => u.id ?? u.user?.id).sort((x, y) => x - y);
    check(JSON.stringify(ids) === JSON.stringify([a.id, b.id].sort((x, y) => x - y)), `${ids}`);
    return { total_entries: found.total_entries };
  });

  await step('users_update', async () => {
    const { user } = await a.cc.users.update({ full_name: 'SDK A renamed', custom_data: '{"k":1}' });
    check(user.id === a.id && user.full_name === 'SDK A renamed', JSON.stringify(user));
    check(user.custom_data === '{"k":1}', `custom_data ${user.custom_data}`);
    return { full_name: user.full_name };
  });

  await step('signup_taken_login', async () => {
    await stranger.createSession();
    const error = await refused(() => stranger.users.signup({ login: a.login, password: 'x-12345678' }));
    check(error.code === 422, `refusal ${describe(error)}`);
    check(error.info?.errors?.login, `refusal ${describe(error)}`);
    return error.info;
  });
  await step('unknown_token', async () => {
    // The SDKs call their sessionExpired hook on exactly this answer (SDK-CONTRACT §2).
    stranger.setSession({ token: '0'.repeat(40) });
    const error = await refused(() => stranger.users.getV2({ login: a.login }));
    check(error.code === 401, `refusal ${describe(error)}`);
    check(
      JSON.stringify(error.info) === '{"errors":{"base":["Required session does not exist"]}}',
      `refusal ${describe(error)}`,
    );
    return error.info;
  });

  // -- XMPP over WebSocket: A with its session token, B with its password ---------------
  a.delivered = [];
  a.waiters = [];
  a.received = [];
  a.cc.chat.onMessageListener = (userId, message) => {
    a.received.push({ userId, message });
    for (const wake of a.waiters.splice(0)) wake();
  };
  a.cc.chat.onDeliveredStatusListener = (messageId, dialogId, userId) => {
    a.delivered.push({ messageId, dialogId, userId });
    for (const wake of a.waiters.splice(0)) wake();
  };
  b.received = [];
  b.waiters = [];
  b.cc.chat.onMessageListener = (userId, message) => {
    b.received.push({ userId, message });
    for (const wake of b.waiters.splice(0)) wake();
  };
  await step('chat_connect_a', async () => {
    check(await a.cc.chat.connect({ userId: a.id, password: a.token }), 'connect() false');
    check(a.cc.chat.isConnected, 'not connected');
    return { jid: a.cc.chat.xmppClient.jid?.toString() };
  });
  await step('chat_connect_b', async () => {
    check(await b.cc.chat.connect({ userId: b.id, password: b.password }), 'connect() false');
    check(b.cc.chat.isConnected, 'not connected');
    return { jid: b.cc.chat.xmppClient.jid?.toString() };
  });
  await step('chat_connect_wrong_password', async () => {
    const error = await refused(() => stranger.chat.connect({ userId: a.id, password: 'wrong-pw' }));
    check(describe(error).includes('not-authorized'), `refusal ${describe(error)}`);
    check(!stranger.chat.isConnected, 'connected with a wrong password');
    return describe(error);
  });
  await step('chat_ping', async () => {
    await a.cc.chat.ping();
    return null;
  });

  // -- REST: dialogs ----------------------------------------------------------------------
  await step('dialog_create_private', async () => {
    const dialog = await a.cc.chat.dialog.create({ type: 3, occupants_ids: [b.id] });
    check(/^[0-9a-f]{24}$/.test(dialog._id), `_id ${dialog._id}`);
    check(dialog.type === 3, `type ${dialog.type}`);
    const occupants = [...dialog.occupants_ids].sort((x, y) => x - y);
    check(JSON.stringify(occupants) === JSON.stringify([a.id, b.id].sort((x, y) => x - y)),
      `occupants ${occupants}`);
    state.privateId = dialog._id;
    return { _id: dialog._id };
  });
  await step('dialog_create_group', async () => {
    const dialog = await a.cc.chat.dialog.create({
      type: 2,
      name: 'SDK group',
      occupants_ids: [b.id],
      description: 'made by the ConnectyCube SDK',
    });
    check(dialog.type === 2 && dialog.name === 'SDK group', JSON.stringify(dialog));
    check(dialog.user_id === a.id, `owner ${dialog.user_id}`);
    check(dialog.xmpp_room_jid === `${credentials.appId}_${dialog._id}@muc.${config.endpoints.chat}`,
      `xmpp_room_jid ${dialog.xmpp_room_jid}`);
    state.groupId = dialog._id;
    return { _id: dialog._id, xmpp_room_jid: dialog.xmpp_room_jid };
  });
  await step('dialog_create_private_again', async () => {
    const dialog = await b.cc.chat.dialog.create({ type: 3, occupants_ids: [a.id] });
    check(dialog._id === state.privateId, `a second private dialog ${dialog._id}`);
    return { _id: dialog._id };
  });
  await step('dialog_list', async () => {
    const list = await b.cc.chat.dialog.list({ sort_desc: 'created_at', limit: 50 });
    const ids = list.items.map((d) => d._id);
    check(ids.includes(state.privateId) && ids.includes(state.groupId), `items ${ids}`);
    check(list.total_entries === 2, `total_entries ${list.total_entries}`);
    const counted = await b.cc.chat.dialog.list({ count: 1 });
    check(counted.items_count === 2, `count=1 gave ${JSON.stringify(counted)}`);
    return { total_entries: list.total_entries, ids };
  });

  // -- XMPP: a saved 1-1 message from A to B --------------------------------------------
  await step('message_send_receive', async () => {
    const body = `hello from the SDK ${suffix}`;
    const arrived = new Promise((resolve) => {
      const look = () => {
        const hit = b.received.find((r) => r.message.body === body);
        if (hit) resolve(hit);
        else b.waiters.push(look);
      };
      look();
    });
    state.messageId = a.cc.chat.send(b.id, {
      type: 'chat',
      body,
      extension: { save_to_history: 1, dialog_id: state.privateId, tag: 'sdk-test' },
    });
    check(/^[0-9a-f]{24}$/.test(state.messageId), `message id ${state.messageId}`);
    const { userId, message } = await arrived;
    check(userId === a.id, `from user ${userId}`);
    check(message.type === 'chat', `type ${message.type}`);
    check(message.id === state.messageId, `id ${message.id} != ${state.messageId}`);
    check(message.dialog_id === state.privateId, `dialog_id ${message.dialog_id}`);
    check(message.extension?.dialog_id === state.privateId,
      `extension ${JSON.stringify(message.extension)}`);
    check(message.extension?.tag === 'sdk-test', `extension ${JSON.stringify(message.extension)}`);
    state.body = body;
    return { id: message.id, dialog_id: message.dialog_id, extension: message.extension };
  });

  await step('delivered_marker', async () => {
    // B's SDK answers every incoming dialog message with a `received` marker (§4.5).
    const hit = await new Promise((resolve) => {
      const look = () => {
        const found = a.delivered.find((d) => d.messageId === state.messageId);
        if (found) resolve(found);
        else a.waiters.push(look);
      };
      look();
    });
    check(hit.dialogId === state.privateId && hit.userId === b.id, JSON.stringify(hit));
    return hit;
  });
  // -- XMPP: a saved group message, B never joined the room (issue 5) -------------------
  await step('group_message_without_join', async () => {
    const body = `to the group ${suffix}`;
    const roomJid = `${credentials.appId}_${state.groupId}@muc.${config.endpoints.chat}`;
    const arrived = new Promise((resolve) => {
      const look = () => {
        const hit = b.received.find((r) => r.message.body === body);
        if (hit) resolve(hit);
        else b.waiters.push(look);
      };
      look();
    });
    const id = a.cc.chat.send(roomJid, {
      type: 'groupchat',
      body,
      extension: { save_to_history: 1, dialog_id: state.groupId },
    });
    const { userId, message } = await arrived;
    check(userId === a.id, `from user ${userId}`);
    check(message.type === 'groupchat', `type ${message.type}`);
    check(message.dialog_id === state.groupId, `dialog_id ${message.dialog_id}`);
    check(message.id === id, `id ${message.id} != ${id}`);
    const counts = await b.cc.chat.message.unreadCount({ chat_dialog_ids: [state.groupId] });
    check(counts[state.groupId] === 1, `group unread ${JSON.stringify(counts)}`);
    const history = await b.cc.chat.message.list({ chat_dialog_id: state.groupId, mark_as_read: 0 });
    check(history.items.some((m) => m._id === id && m.message === body),
      `history ${JSON.stringify(history.items)}`);
    return { id, dialog_id: message.dialog_id, unread: counts[state.groupId] };
  });
  await step('dialog_update', async () => {
    const dialog = await a.cc.chat.dialog.update(state.groupId, {
      name: 'SDK group renamed',
      push_all: { admins_ids: [b.id] },
    });
    check(dialog.name === 'SDK group renamed', `name ${dialog.name}`);
    check(dialog.admins_ids.includes(b.id), `admins_ids ${dialog.admins_ids}`);
    return { name: dialog.name, admins_ids: dialog.admins_ids };
  });
  await step('dialog_delete', async () => {
    await a.cc.chat.dialog.delete(state.groupId, { force: 1 });
    const list = await b.cc.chat.dialog.list({});
    const ids = list.items.map((d) => d._id);
    check(!ids.includes(state.groupId), `still listed: ${ids}`);
    return { remaining: ids };
  });

  // -- REST: unread counts and history (history over XMPP: save_to_history) --------------
  await step('unread_count', async () => {
    const counts = await b.cc.chat.message.unreadCount({ chat_dialog_ids: [state.privateId] });
    check(counts[state.privateId] === 1, `counts ${JSON.stringify(counts)}`);
    check(counts.total >= 1, `counts ${JSON.stringify(counts)}`);
    return counts;
  });
  await step('dialog_last_message', async () => {
    const list = await b.cc.chat.dialog.list({ _id: state.privateId });
    const dialog = list.items[0];
    check(dialog, `no dialog in ${JSON.stringify(list)}`);
    check(dialog.last_message === state.body, `last_message ${dialog.last_message}`);
    check(dialog.last_message_id === state.messageId, `last_message_id ${dialog.last_message_id}`);
    check(dialog.last_message_user_id === a.id, `last_message_user_id ${dialog.last_message_user_id}`);
    check(dialog.unread_messages_count === 1, `unread_messages_count ${dialog.unread_messages_count}`);
    return { last_message_id: dialog.last_message_id, unread: dialog.unread_messages_count };
  });
  await step('history_list', async () => {
    const history = await b.cc.chat.message.list({
      chat_dialog_id: state.privateId,
      sort_desc: 'date_sent',
      limit: 10,
    });
    const item = history.items.find((m) => m._id === state.messageId);
    check(item, `message ${state.messageId} not in ${JSON.stringify(history.items)}`);
    check(item.message === state.body, `message ${item.message}`);
    check(item.sender_id === a.id && item.recipient_id === b.id,
      `sender ${item.sender_id} recipient ${item.recipient_id}`);
    check(item.chat_dialog_id === state.privateId, `chat_dialog_id ${item.chat_dialog_id}`);
    return { _id: item._id, items: history.items.length };
  });
  await step('unread_after_read', async () => {
    const counts = await b.cc.chat.message.unreadCount({ chat_dialog_ids: [state.privateId] });
    check(counts[state.privateId] === 0, `counts ${JSON.stringify(counts)}`);
    return counts;
  });
  await step('reply_without_dialog_id', async () => {
    // The server finds the pair's private dialog and adds extraParams/dialog_id (issue 3).
    const body = `reply ${suffix}`;
    const arrived = new Promise((resolve) => {
      const look = () => {
        const hit = a.received.find((r) => r.message.body === body);
        if (hit) resolve(hit);
        else a.waiters.push(look);
      };
      look();
    });
    const id = b.cc.chat.send(a.id, { type: 'chat', body, extension: { save_to_history: 1 } });
    const { userId, message } = await arrived;
    check(userId === b.id && message.id === id, `from ${userId} id ${message.id}`);
    check(message.dialog_id === state.privateId, `dialog_id ${message.dialog_id}`);
    const history = await a.cc.chat.message.list({ chat_dialog_id: state.privateId, limit: 10 });
    check(history.items.some((m) => m._id === id && m.message === body),
      `not in history: ${JSON.stringify(history.items)}`);
    return { id, dialog_id: message.dialog_id };
  });

  // -- REST history extras: attachment filter, reactions, edits, search ------------------
  await step('history_attachments_type', async () => {
    const image = await a.cc.chat.message.create({
      chat_dialog_id: state.privateId,
      message: `picture ${suffix}`,
      attachments: [{ type: 'image', uid: `uid-${suffix}` }],
    });
    state.imageId = image._id;
    const history = await b.cc.chat.message.list({
      chat_dialog_id: state.privateId,
      'attachments.type': 'image',
      mark_as_read: 0,
    });
    const ids = history.items.map((m) => m._id);
    check(JSON.stringify(ids) === JSON.stringify([image._id]), `items ${ids}`);
    return { _id: image._id, attachments: history.items[0].attachments };
  });
  await step('reactions_add_list', async () => {
    a.reactions = [];
    a.cc.chat.onMessageReactionsListener = (messageId, userId, dialogId, add, remove) => {
      a.reactions.push({ messageId, userId, dialogId, add, remove });
      for (const wake of a.waiters.splice(0)) wake();
    };
    await b.cc.chat.message.addReaction(state.imageId, '👍');
    const hit = await arrival(a, 'reactions', (r) => r.messageId === state.imageId);
    check(hit.userId === b.id && hit.dialogId === state.privateId && hit.add === '👍',
      JSON.stringify(hit));
    const listed = await a.cc.chat.message.listReactions(state.imageId);
    check(JSON.stringify(listed) === JSON.stringify({ '👍': [b.id] }), JSON.stringify(listed));
    const history = await b.cc.chat.message.list({ chat_dialog_id: state.privateId, mark_as_read: 0 });
    const item = history.items.find((m) => m._id === state.imageId);
    check(JSON.stringify(item?.reactions) === JSON.stringify({ own: ['👍'], total: { '👍': 1 } }),
      `reactions ${JSON.stringify(item?.reactions)}`);
    return { notified: hit, listed };
  });
  await step('message_edit_notified', async () => {
    b.updates = [];
    b.cc.chat.onMessageUpdateListener = (messageId, isLast, body, dialogId, userId) => {
      b.updates.push({ messageId, isLast, body, dialogId, userId });
      for (const wake of b.waiters.splice(0)) wake();
    };
    const text = `picture edited ${suffix}`;
    await a.cc.chat.message.update(state.imageId, { chat_dialog_id: state.privateId, message: text });
    const hit = await arrival(b, 'updates', (u) => u.messageId === state.imageId);
    check(hit.body === text && hit.isLast === true, JSON.stringify(hit));
    check(hit.dialogId === state.privateId && hit.userId === a.id, JSON.stringify(hit));
    state.edited = text;
    return hit;
  });
  await step('chat_search', async () => {
    const { results } = await b.cc.chat.search({
      search_text: suffix,
      start_date: new Date(Date.now() - 3600 * 1000),
      chat_dialog_ids: [state.privateId],
    });
    const texts = results.messages.map((m) => m.message);
    check(texts.includes(state.edited) && texts.includes(state.body), `messages ${texts}`);
    const logins = results.users.map((u) => u.login).sort();
    check(JSON.stringify(logins) === JSON.stringify([a.login, b.login].sort()), `users ${logins}`);
    check(Array.isArray(results.dialogs), `dialogs ${JSON.stringify(results.dialogs)}`);
    return { messages: texts.length, users: logins };
  });
  await step('storage_upload_download', async () => {
    // SDK-CONTRACT §5.3: create, the SDK's own multipart upload, complete; then both URLs.
    const bytes = Buffer.from(`attachment ${suffix}`);
    const blob = await a.cc.storage.createAndUpload({
      name: 'note.txt', file: bytes, type: 'text/plain', size: bytes.length, public: false,
    });
    check(blob.uid && blob.size === bytes.length, JSON.stringify(blob));
    const info = await a.cc.storage.getInfo(blob.id);
    check(info.blob?.size === bytes.length, `info ${JSON.stringify(info)}`);
    const url = a.cc.storage.privateUrl(blob.uid);
    const got = await fetch(url);
    const text = await got.text();
    check(got.status === 200 && text === bytes.toString(), `${got.status} ${text}`);
    const anonymous = await fetch(a.cc.storage.publicUrl(blob.uid));
    check(anonymous.status === 401, `without token ${anonymous.status}`);
    return { id: blob.id, uid: blob.uid, size: blob.size };
  });
}

async function disconnectAll() {
  const detail = {};
  for (const [key, p] of [...Object.entries(people), ['stranger', { cc: stranger }]]) {
    if (p.cc.chat.isConnected) {
      detail[key] = await bounded(p.cc.chat.disconnect(), `disconnect ${key}`).catch(describe);
    }
  }
  return detail;
}

let failed = false;
try {
  await flow();
} catch (error) {
  failed = true;
  if (!(error instanceof StepFailed)) report('flow', false, describe(error));
}
// Always leave the chat and the sessions (bounded), reported as steps of their own.
try {
  await step('chat_disconnect', async () => {
    const detail = await disconnectAll();
    for (const [key, p] of Object.entries(people)) {
      check(!p.cc.chat.isConnected, `${key} still connected`);
    }
    return detail;
  });
  await step('logout_and_session_destroy', async () => {
    await a.cc.logout(); // DELETE /login.json: back to an application session
    const session = await a.cc.getSession();
    check(!session.user_id, `user_id ${session.user_id} after logout`);
    await a.cc.destroySession();
    await b.cc.destroySession();
    return null;
  });
} catch {
  failed = true;
}
process.exit(failed ? 1 : 0);

'use strict'
// Stand-in for the GitHub fork of reconnect-core that node-xmpp-core requires
// (SDK-CONTRACT §1.2): `reconnect(createConnection)` returns `inject(options)`,
// which adds connect/listen/end/disconnect to `options.emitter`. Each
// connect/listen call makes one attempt; there is no automatic reconnection.
var EventEmitter = require('events').EventEmitter

module.exports = function reconnect (createConnection) {
  return function inject (options) {
    options = options || {}
    var emitter = options.emitter || new EventEmitter()
    emitter.connected = false
    emitter._connection = null

    function attempt (args) {
      emitter.emit('reconnect', 0, 0)
      var con = createConnection.apply(emitter, args)
      if (con !== emitter._connection) emitter.emit('connection', con)
      emitter._connection = con
      var done = false
      function onDisconnect (error) {
        if (done) return
        done = true
        emitter.connected = false
        emitter.emit('disconnect', error)
      }
      function onConnect () {
        emitter.connected = true
        emitter.emit('connect', con)
      }
      con.on('error', onDisconnect)
      con.on('close', function () { onDisconnect() })
      con.on('end', function () { onDisconnect() })
      if (options.immediate) onConnect()
      else con.once('connect', onConnect)
    }

    emitter.connect = emitter.listen = function () {
      attempt([].slice.call(arguments))
      return emitter
    }
    emitter.end = emitter.disconnect = function () {
      emitter.connected = false
      if (emitter._connection && emitter._connection.end) emitter._connection.end()
      return emitter
    }
    return emitter
  }
}

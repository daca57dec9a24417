"""Interop check of a FleetMQ broker with Eclipse Paho for Python (Debian's
python3-paho-mqtt, API 1.x).

Usage: paho_roundtrip.py HOST PORT PREFIX

For MQTT 3.1.1 and MQTT 5.0 in turn it checks:
  * QoS 1 and QoS 2 publish/subscribe round trips (payload, QoS, and for v5
    a user property and the content type arriving intact);
  * a persistent session (clean session false / clean start false with a
    session expiry): a subscriber goes away, QoS 1 and 2 messages are
    published meanwhile, and on reconnecting it is told the session is
    present and receives both.

Prints one line per check and exits 0 when all pass, 1 with a FAIL line
otherwise. broker/interop_test.go runs it against an in-process broker.
"""

import queue
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

WAIT = 10  # seconds; bounds every wait so a broken broker fails, not hangs


class Failure(Exception):
    pass


def expect(q, what):
    try:
        return q.get(timeout=WAIT)
    except queue.Empty:
        raise Failure("timed out waiting for " + what)


class Peer:
    """One client with its callbacks turned into queues."""

    def __init__(self, host, port, client_id, protocol, persistent=False):
        self.host, self.port = host, port
        self.protocol = protocol
        self.persistent = persistent
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        self.messages = queue.Queue()
        self.published = queue.Queue()
        self.disconnects = queue.Queue()
        if protocol == mqtt.MQTTv5:
            self.client = mqtt.Client(client_id=client_id, protocol=protocol)
        else:
            self.client = mqtt.Client(client_id=client_id, clean_session=not persistent, protocol=protocol)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda c, u, mid, granted, *props: self.subacks.put(granted)
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_publish = lambda c, u, mid: self.published.put(mid)
        self.client.on_disconnect = lambda c, u, rc, *props: self.disconnects.put(rc)

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connacks.put((flags.get("session present", 0), rc))

    def connect(self, clean):
        if self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            if self.persistent:
                props.SessionExpiryInterval = 300
            self.client.connect(self.host, self.port, keepalive=30, clean_start=clean, properties=props)
        else:
            self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        present, rc = expect(self.connacks, "CONNACK")
        if rc != 0:
            raise Failure("CONNACK refused: %s" % rc)
        return present

    def subscribe(self, topic, qos):
        self.client.subscribe(topic, qos)
        granted = expect(self.subacks, "SUBACK for " + topic)
        code = granted[0]
        code = getattr(code, "value", code)  # v5 gives ReasonCodes objects
        if code != qos:
            raise Failure("SUBACK for %s granted %s, want QoS %d" % (topic, code, qos))

    def publish(self, topic, payload, qos, properties=None):
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        info.wait_for_publish(timeout=WAIT)
        if not info.is_published():
            raise Failure("PUBLISH %s QoS %d was not acknowledged" % (topic, qos))

    def receive(self, topic, payload, qos):
        msg = expect(self.messages, "message on " + topic)
        if msg.topic != topic or msg.payload != payload or msg.qos != qos:
            raise Failure("got %s %r QoS %d, want %s %r QoS %d" % (msg.topic, msg.payload, msg.qos, topic, payload, qos))
        return msg

    def close(self):
        self.client.disconnect()
        expect(self.disconnects, "disconnect")
        self.client.loop_stop()


def round_trip(host, port, prefix, protocol, name):
    base = "%s/%s" % (prefix, name)
    sub = Peer(host, port, base + "-sub", protocol)
    pub = Peer(host, port, base + "-pub", protocol)
    sub.connect(clean=True)
    pub.connect(clean=True)
    sub.subscribe(base + "/rt/#", 2)
    for qos in (1, 2):
        topic = "%s/rt/q%d" % (base, qos)
        payload = ("héllo qos %d" % qos).encode()
        props = None
        if protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("origin", "paho-python"), ("qos", str(qos))]
            props.ContentType = "text/plain"
        pub.publish(topic, payload, qos, props)
        msg = sub.receive(topic, payload, qos)
        if protocol == mqtt.MQTTv5:
            got = getattr(msg.properties, "UserProperty", None)
            if got != [("origin", "paho-python"), ("qos", str(qos))]:
                raise Failure("user properties arrived as %r" % (got,))
            if getattr(msg.properties, "ContentType", None) != "text/plain":
                raise Failure("content type arrived as %r" % (getattr(msg.properties, "ContentType", None),))
        print("ok %s round trip QoS %d" % (name, qos))
    sub.close()
    pub.close()


def resume(host, port, prefix, protocol, name):
    base = "%s/%s" % (prefix, name)
    topic = base + "/resume"
    sub = Peer(host, port, base + "-persistent", protocol, persistent=True)
    if sub.connect(clean=True):
        raise Failure("first connection with a clean start reported a session present")
    sub.subscribe(topic, 2)
    sub.close()

    pub = Peer(host, port, base + "-pub2", protocol)
    pub.connect(clean=True)
    pub.publish(topic, b"while away q1", 1)
    pub.publish(topic, b"while away q2", 2)
    pub.close()

    back = Peer(host, port, base + "-persistent", protocol, persistent=True)
    if not back.connect(clean=False):
        raise Failure("reconnecting without a clean start: CONNACK session present is 0")
    back.receive(topic, b"while away q1", 1)
    back.receive(topic, b"while away q2", 2)
    back.close()
    print("ok %s persistent session resumed" % name)


def main():
    host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    try:
        for protocol, name in ((mqtt.MQTTv311, "v311"), (mqtt.MQTTv5, "v5")):
            round_trip(host, port, prefix, protocol, name)
            resume(host, port, prefix, protocol, name)
    except Failure as e:
        print("FAIL: %s" % e)
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()

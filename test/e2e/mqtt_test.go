package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/fleetmq/fleetmq/api/v1alpha1"
	"github.com/fleetmq/fleetmq/test/devfleet"
)

// credentials is an MQTT username and password.
type credentials struct{ username, password string }

// sensorCredentials reads the sample user sensor-1's password from the Secret its spec names.
func sensorCredentials(ctx context.Context) credentials {
	GinkgoHelper()
	var s corev1.Secret
	Expect(fleet.Client.Get(ctx, client.ObjectKey{Namespace: devfleet.SampleNamespace, Name: "sensor-1-password"}, &s)).To(Succeed())
	return credentials{"sensor-1", string(s.Data["password"])}
}

// dashboardCredentials reads the password the operator generated for the sample user
// dashboard, from the Secret its status names.
func dashboardCredentials(ctx context.Context) credentials {
	GinkgoHelper()
	var u v1.MQTTUser
	Eventually(func(g Gomega) {
		g.Expect(fleet.Client.Get(ctx, client.ObjectKey{Namespace: devfleet.SampleNamespace, Name: "dashboard"}, &u)).To(Succeed())
		g.Expect(u.Status.SecretName).NotTo(BeEmpty())
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	var s corev1.Secret
	Expect(fleet.Client.Get(ctx, client.ObjectKey{Namespace: devfleet.SampleNamespace, Name: u.Status.SecretName}, &s)).To(Succeed())
	Expect(s.Data).To(HaveKey("password"))
	return credentials{"dashboard", string(s.Data["password"])}
}

// mqttClient is a connected MQTT 5 client and the messages it receives.
type mqttClient struct {
	*paho.Client
	addr     string
	messages chan *paho.Publish
}

// podAddr is host:port of a broker pod's listener, reachable from the host.
func podAddr(ctx context.Context, pod string, port int) string {
	GinkgoHelper()
	var p corev1.Pod
	Expect(fleet.Client.Get(ctx, client.ObjectKey{Namespace: devfleet.SampleNamespace, Name: pod}, &p)).To(Succeed())
	Expect(p.Status.PodIP).NotTo(BeEmpty(), "pod %s has no IP", pod)
	return net.JoinHostPort(p.Status.PodIP, fmt.Sprint(port))
}

// lockedConn makes paho.golang write each packet whole. Its packets.WriteTo
// (v0.23) writes a packet as several Writes unless the connection does
// vectored writes (a TCP connection) or is a sync.Locker, which it then holds
// for the packet; a tls.Conn is neither, so a packet the client's own
// goroutines write (an acknowledgement, a ping) could land inside one the
// spec publishes, and the broker rightly closes the connection as malformed.
type lockedConn struct {
	net.Conn
	sync.Mutex
}

// connect connects an MQTT 5 client to addr with creds, over TLS when tlsConfig is set. The
// client is disconnected when the spec ends.
func connect(ctx context.Context, addr, clientID string, creds credentials, tlsConfig *tls.Config) *mqttClient {
	GinkgoHelper()
	c, err := dial(ctx, addr, clientID, creds, tlsConfig)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { _ = c.Disconnect(&paho.Disconnect{ReasonCode: 0}) })
	return c
}

func dial(ctx context.Context, addr, clientID string, creds credentials, tlsConfig *tls.Config) (*mqttClient, error) {
	var conn net.Conn
	var err error
	d := &net.Dialer{Timeout: 5 * time.Second}
	if tlsConfig != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, tlsConfig)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return handshake(ctx, conn, addr, clientID, creds)
}

// handshake runs an MQTT 5 client over conn, connected to addr, and connects it with
// creds (none when the username is empty). conn is closed if the broker refuses.
func handshake(ctx context.Context, conn net.Conn, addr, clientID string, creds credentials) (*mqttClient, error) {
	c := &mqttClient{addr: addr, messages: make(chan *paho.Publish, 16)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: &lockedConn{Conn: conn},
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case c.messages <- pr.Packet:
			default:
			}
			return true, nil
		}},
	})
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30}
	if creds.username != "" {
		cp.Username, cp.UsernameFlag = creds.username, true
		cp.Password, cp.PasswordFlag = []byte(creds.password), true
	}
	ca, err := c.Connect(cctx, cp)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("MQTT connect to %s as %s: %w", addr, creds.username, err)
	}
	if ca.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("MQTT connect to %s as %s refused: reason 0x%02x %s", addr, creds.username, ca.ReasonCode, ca.Properties.ReasonString)
	}
	return c, nil
}

// publish publishes at QoS 1 and returns the broker's PUBACK reason code; an MQTT 5 broker
// answers a publish its ACL forbids with 0x87 (not authorized).
func (c *mqttClient) publish(ctx context.Context, topic, payload string) (byte, error) {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := c.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
	if r != nil {
		return r.ReasonCode, nil // a reason code >= 0x80 comes with an error that only repeats it
	}
	return 0, err
}

// subscribe subscribes at QoS 1 and returns the SUBACK reason code (0x87: not authorized).
func (c *mqttClient) subscribe(ctx context.Context, filter string) (byte, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := c.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if r != nil && len(r.Reasons) == 1 {
		return r.Reasons[0], nil
	}
	return 0, err
}

// receive waits for the next message on topic and returns its payload.
func (c *mqttClient) receive(topic string, timeout time.Duration) string {
	GinkgoHelper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-c.messages:
			if m.Topic == topic {
				return string(m.Payload)
			}
		case <-deadline:
			Fail(fmt.Sprintf("no message on %s at %s within %s", topic, c.addr, timeout))
			return ""
		}
	}
}

// connected reports whether the client's connection is still up.
func (c *mqttClient) connected() bool {
	select {
	case <-c.Done():
		return false
	default:
		return true
	}
}

// caPool reads the CA certificate the operator keeps in the <broker>-ca Secret.
func caPool(ctx context.Context, broker string) *x509.CertPool {
	GinkgoHelper()
	var s corev1.Secret
	Expect(fleet.Client.Get(ctx, client.ObjectKey{Namespace: devfleet.SampleNamespace, Name: broker + "-ca"}, &s)).To(Succeed())
	Expect(s.Data).To(HaveKey("ca.crt"))
	pool := x509.NewCertPool()
	Expect(pool.AppendCertsFromPEM(s.Data["ca.crt"])).To(BeTrue(), "Secret %s-ca holds no PEM certificate under ca.crt", broker)
	return pool
}

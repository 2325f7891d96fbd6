// A CMS as a Node.js vendor would write it: the `soap` package builds its client from the WSDL the
// broker serves, and none of the broker's code is used. It reports one call and prints the status
// the broker answers, or the fault (exit status 1).
//
// usage: node client.js URL USER PASSWORD CALL_ID VERSION STATE
'use strict';
const soap = require('soap');

async function main() {
  const args = process.argv.slice(2);
  if (args.length !== 6) {
    console.error('usage: node client.js URL USER PASSWORD CALL_ID VERSION STATE');
    return 2;
  }
  const [url, user, password, id, version, state] = args;
  const client = await soap.createClientAsync(url + '?wsdl');
  client.setEndpoint(url);
  client.setSecurity(new soap.BasicAuthSecurity(user, password));
  const call = {
    id, version, state,
    agentId: 'alice',
    changedAt: '2026-11-20T10:00:00Z',
    direction: 'inbound',
    remoteNumbers: { item: ['+493012345678'] },
    localAddress: '+49301111',
  };
  try {
    const [result] = await client.phoneCallChangedAsync({ call });
    console.log(result.status);
    return 0;
  } catch (err) {
    const fault = err.root && err.root.Envelope && err.root.Envelope.Body && err.root.Envelope.Body.Fault;
    console.error(fault ? JSON.stringify(fault) : String(err));
    return 1;
  }
}

main().then((code) => process.exit(code), (err) => { console.error(String(err)); process.exit(1); });

"""A CMS as a Python vendor would write it: zeep builds its client from the WSDL the broker serves,
and none of the broker's code is used. It reports one call and prints the status the broker
answers, or the fault (exit status 1).

usage: zeep_client.py URL USER PASSWORD CALL_ID VERSION STATE
"""
import datetime
import sys

import requests
import zeep
import zeep.exceptions
import zeep.transports


def main(argv):
    if len(argv) != 7:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    url, user, password, call_id, version, state = argv[1:]
    session = requests.Session()
    session.auth = requests.auth.HTTPBasicAuth(user, password)
    client = zeep.Client(url + "?wsdl", transport=zeep.transports.Transport(session=session))
    service = client.create_service("{urn:commbroker:ici:1}IciBroker", url)
    call = {
        "id": call_id, "version": int(version), "state": state, "agentId": "alice",
        "changedAt": datetime.datetime(2026, 11, 20, 10, 0, tzinfo=datetime.timezone.utc),
        "direction": "inbound", "remoteNumbers": {"item": ["+493012345678"]},
        "localAddress": "+49301111",
    }
    try:
        print(service.phoneCallChanged(call=call))
        return 0
    except zeep.exceptions.Fault as fault:
        print(f"{fault.code}: {fault.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

// The frame for an unknown inbox key: ask the loader to take the empty frame away.
parent.postMessage({type: "helpdesk:unavailable"}, "*");
